"""French reference data and the identifiers built from it: NIR, IBAN, phone numbers, e-mails.

Everything here is fictional but shaped like the real thing, and safe to print:
- NIRs follow the INSEE layout (sex, year, month, birth department and commune, order, key) with
  a valid key, Corsica's `2A`/`2B` included;
- phone numbers come from the ranges ARCEP reserves for fiction (01 99 00, 02 61 91, 03 53 01,
  04 65 71, 05 36 49, 06 39 98), stored in E.164 form;
- e-mail addresses use the domains reserved for documentation (RFC 2606: example.com/.org/.net);
- IP addresses come from the documentation ranges (RFC 5737: TEST-NET-1, -2 and -3);
- IBANs and RIB keys are valid (ISO 13616 check digits, the French RIB key).
"""

import random
import unicodedata
from dataclasses import dataclass

MALE_FIRST_NAMES = (
    "Julien",
    "Nicolas",
    "Thomas",
    "Pierre",
    "Antoine",
    "Maxime",
    "Alexandre",
    "Sébastien",
    "Laurent",
    "François",
    "Mathieu",
    "Olivier",
    "Romain",
    "Guillaume",
    "Vincent",
    "Jérôme",
    "Christophe",
    "Hugo",
    "Lucas",
    "Louis",
    "Gabriel",
    "Arthur",
    "Raphaël",
    "Jules",
    "Noah",
    "Karim",
    "Mehdi",
    "Yann",
)
FEMALE_FIRST_NAMES = (
    "Claire",
    "Marie",
    "Camille",
    "Julie",
    "Sophie",
    "Émilie",
    "Aurélie",
    "Céline",
    "Nathalie",
    "Isabelle",
    "Sandrine",
    "Stéphanie",
    "Léa",
    "Manon",
    "Chloé",
    "Inès",
    "Jade",
    "Louise",
    "Emma",
    "Alice",
    "Sarah",
    "Amandine",
    "Élodie",
    "Hélène",
    "Nadia",
    "Fatima",
    "Anne-Sophie",
    "Marion",
)
LAST_NAMES = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Lefebvre",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guérin",
    "Muller",
    "Henry",
    "Roussel",
    "Nicolas",
    "Perrin",
    "Morin",
    "Mathieu",
    "Clément",
    "Gauthier",
    "Dumont",
    "Lopez",
    "Fontaine",
    "Chevalier",
    "Robin",
    "Nguyen",
    "Benali",
    "Da Silva",
    "Le Gall",
    "Kerjean",
    "Santoni",
    "Pietri",
)
OCCUPATIONS = (
    "Ingénieur logiciel",
    "Infirmière",
    "Professeur des écoles",
    "Comptable",
    "Technicien de maintenance",
    "Commercial",
    "Chef de projet",
    "Pharmacien",
    "Artisan boulanger",
    "Conducteur de travaux",
    "Assistante de direction",
    "Juriste",
    "Aide-soignante",
    "Architecte",
    "Responsable logistique",
    "Chargé de clientèle",
    "Électricien",
    "Consultant",
    "Kinésithérapeute",
    "Agent administratif",
)
EMPLOYERS = (
    "Transports Rhône-Alpes SAS",
    "Clinique des Cèdres",
    "Éducation nationale",
    "Cabinet Fiduciaire Morel",
    "Métallerie du Forez",
    "Groupe Horizon Distribution",
    "Batiloire Construction",
    "Atelier Numérique SARL",
    "Mairie de Villeurbanne",
    "Logistique Atlantique",
    "Boulangerie du Marché",
    "Pharmacie Centrale",
    "Cabinet d'architectes Alto",
    "Société Générale d'Équipement",
    "Conseil Départemental",
    "Hôpital privé du Parc",
)


@dataclass(frozen=True)
class Place:
    """A commune: where people live (postal code, city) and are born (INSEE department and commune)."""

    city: str
    postal_code: str
    department: str  # INSEE department as in a NIR: "69", "2A", "2B", "971"…
    commune: str  # the last three digits of the INSEE commune code


PLACES = (
    Place("Paris", "75011", "75", "111"),
    Place("Paris", "75015", "75", "115"),
    Place("Lyon", "69003", "69", "383"),
    Place("Villeurbanne", "69100", "69", "266"),
    Place("Marseille", "13008", "13", "208"),
    Place("Toulouse", "31000", "31", "555"),
    Place("Nice", "06000", "06", "088"),
    Place("Nantes", "44000", "44", "109"),
    Place("Strasbourg", "67000", "67", "482"),
    Place("Montpellier", "34000", "34", "172"),
    Place("Bordeaux", "33000", "33", "063"),
    Place("Lille", "59000", "59", "350"),
    Place("Rennes", "35000", "35", "238"),
    Place("Grenoble", "38000", "38", "185"),
    Place("Dijon", "21000", "21", "231"),
    Place("Angers", "49000", "49", "007"),
    Place("Tours", "37000", "37", "261"),
    Place("Brest", "29200", "29", "019"),
    Place("Boulogne-Billancourt", "92100", "92", "012"),
    Place("Versailles", "78000", "78", "646"),
    Place("Annecy", "74000", "74", "010"),
    Place("Ajaccio", "20000", "2A", "004"),
    Place("Bastia", "20200", "2B", "033"),
    Place("Pointe-à-Pitre", "97110", "971", "20"),
)
# Born abroad: department 99 and the INSEE country code in place of the commune.
FOREIGN_BIRTHPLACES = (("99", "350"), ("99", "352"), ("99", "139"), ("99", "127"), ("99", "109"))

STREETS = (
    "rue de la République",
    "avenue Jean Jaurès",
    "boulevard Victor Hugo",
    "rue Pasteur",
    "place de la Mairie",
    "chemin des Vignes",
    "allée des Tilleuls",
    "rue du Général de Gaulle",
    "impasse des Lilas",
    "rue Nationale",
    "rue Paul Bert",
    "quai de la Loire",
    "cours Lafayette",
    "rue des Écoles",
    "avenue de la Gare",
)
# (country code, city, postal code) for households living abroad under an expatriation policy.
ABROAD = (
    ("CA", "Montréal", "H2X 1Y4"),
    ("SN", "Dakar", "12500"),
    ("AE", "Dubaï", "00000"),
    ("SG", "Singapour", "049315"),
    ("US", "New York", "10016"),
    ("MA", "Casablanca", "20250"),
)
EXPATRIATION_COUNTRIES = tuple(code for code, _, _ in ABROAD)

# (bank code, BIC) of French banks, for IBANs.
BANKS = (
    ("30004", "BNPAFRPPXXX"),
    ("30003", "SOGEFRPPXXX"),
    ("10278", "CMCIFR2AXXX"),
    ("20041", "PSSTFRPPXXX"),
    ("30002", "CRLYFRPPXXX"),
    ("18206", "AGRIFRPP882"),
    ("11315", "CEPAFRPP131"),
)

_FICTION_PHONE_PREFIXES = ("199 00", "261 91", "353 01", "465 71", "536 49", "639 98")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


def nir_key(first13: str) -> str:
    """The two-digit key of a NIR: 97 - (the first 13 characters mod 97), 2A/2B read as 19/18."""
    corsica = {"2A": "19", "2B": "18"}
    department = first13[5:7].upper()
    digits = first13[:5] + corsica[department] + first13[7:] if department in corsica else first13
    return f"{97 - int(digits) % 97:02d}"


def make_nir(sex: int, year: int, month: int, department: str, commune: str, order: int) -> str:
    """A 15-character NIR with its key. Overseas departments use 3 digits and a 2-digit commune."""
    first13 = f"{sex}{year % 100:02d}{month:02d}{department}{commune}{order:03d}"
    if len(first13) != 13:
        raise ValueError("a NIR has 13 characters before its key")
    return first13 + nir_key(first13)


def random_nir(rng: random.Random, sex: int, year: int, month: int) -> str:
    """A NIR for someone born in France (or, rarely, abroad) with a random order number."""
    if rng.random() < 0.06:
        department, commune = rng.choice(FOREIGN_BIRTHPLACES)
    else:
        place = rng.choice(PLACES)
        department, commune = place.department, place.commune
    return make_nir(sex, year, month, department, commune, rng.randint(1, 999))


def fiction_phones() -> list[str]:
    """Every fictional number, in E.164 form (+33…), in a fixed order: about 60,000 of them."""
    return [f"+33{prefix.replace(' ', '')}{n:04d}" for prefix in _FICTION_PHONE_PREFIXES for n in range(10_000)]


def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters, digits, dots and hyphens: what an e-mail local part is made of."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in kept).strip("-")


def email_for(rng: random.Random, first_name: str, last_name: str, birth_year: int) -> str:
    """A plausible personal address, lower-case (as the source systems store them)."""
    first, last = ascii_slug(first_name), ascii_slug(last_name)
    local = rng.choice(
        (
            f"{first}.{last}",
            f"{first[0]}.{last}",
            f"{first}.{last}{birth_year % 100:02d}",
            f"{first}{last}",
            f"{last}.{first}",
        )
    )
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def _letters_to_digits(text: str) -> str:
    return "".join(str(int(c, 36)) for c in text)


def make_iban(bank_code: str, branch: str, account: str) -> str:
    """A valid French IBAN (FR76-style) from a RIB: bank, branch, 11-digit account and RIB key."""
    rib_key = 97 - (89 * int(bank_code) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank_code}{branch}{account}{rib_key:02d}"
    check = 98 - int(_letters_to_digits(bban + "FR") + "00") % 97
    return f"FR{check:02d}{bban}"


def random_bank_account(rng: random.Random) -> tuple[str, str]:
    """(IBAN, BIC) of an account at a random French bank."""
    bank_code, bic = rng.choice(BANKS)
    branch = f"{rng.randint(1, 99999):05d}"
    account = f"{rng.randrange(10**11):011d}"
    return make_iban(bank_code, branch, account), bic


def iban_is_valid(iban: str) -> bool:
    """The ISO 13616 check: move the first four characters to the end and read it mod 97."""
    rearranged = iban[4:] + iban[:4]
    return int(_letters_to_digits(rearranged)) % 97 == 1


def documentation_ip(rng: random.Random) -> str:
    """An IPv4 address from the RFC 5737 documentation ranges."""
    return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 254)}"


USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
