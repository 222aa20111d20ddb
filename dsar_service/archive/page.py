"""index.html: the page a person reads first, self-contained (no script, no external asset).

It says what was searched and found in each system (a system that failed or timed out is said
so in words), the deadline, the information of GDPR art. 15(1)(a)-(h) and 15(2) for each
processing activity the exported data falls under, the subject's rights and how to exercise
them, other people's data removed (art. 15(4)), and how to read the other files. For
portability it also says what art. 20 covers and what it leaves out. Headings are bilingual
(English / French), the text English.

Every value that comes from data is escaped with html.escape; links are relative paths into
the archive, so the page works once the ZIP is extracted.
"""

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from html import escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..register import Activity, Contact, Labels, Register, Right, Transfers
from .manifest import status_text
from .report import ArchiveReport, DatasetReport, SystemReport

__all__ = ["render_index"]

try:
    _PARIS: ZoneInfo | None = ZoneInfo("Europe/Paris")
except ZoneInfoNotFoundError:  # no tz database: times are shown in UTC
    _PARIS = None

_IDENTIFIER_WORDS = {
    "email": "E-mail address",
    "phone": "Phone number",
    "nir": "Social security number (NIR)",
    "person_id": "Insured person number (internal)",
    "policy_number": "Policy number",
    "visitor_id": "Website cookie identifier",
    "candidate_id": "Applicant file number",
    "full_name": "Full name",
    "birth_date": "Date of birth",
}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

_STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1d2330; background: #fff; margin: 0; }
main { max-width: 62rem; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
header { background: #17324d; color: #fff; padding: 1.5rem 2rem; }
header .wrap { max-width: 62rem; margin: 0 auto; }
header h1 { margin: 0 0 .25rem; font-size: 1.6rem; }
header p { margin: .2rem 0; color: #d7e2ee; }
h2 { border-bottom: 2px solid #17324d; padding-bottom: .2rem; margin-top: 2.2rem; font-size: 1.3rem; }
h2 .fr, h3 .fr { font-weight: normal; color: #5a6577; font-size: .85em; }
h3 { margin: 1.6rem 0 .4rem; font-size: 1.1rem; }
h4 { margin: 1rem 0 .2rem; font-size: .98rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .93rem; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid #d9dee6; }
th { background: #eef2f7; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.files { white-space: nowrap; }
td.keys { font-size: .85rem; }
td.keys code { white-space: nowrap; }
code { font: .88em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f2f4f7;
       padding: 0 .2em; border-radius: 3px; }
.box { border-left: 4px solid #17324d; background: #f4f7fb; padding: .6rem 1rem; margin: 1rem 0; }
.warn { border-left-color: #b3261e; background: #fdf1f0; }
.ok { color: #1f6f43; font-weight: 600; }
.bad { color: #b3261e; font-weight: 600; }
.muted { color: #5a6577; font-size: .9rem; }
nav ol { columns: 2; padding-left: 1.2rem; }
dl.facts { display: grid; grid-template-columns: 14rem 1fr; gap: .2rem 1rem; margin: .5rem 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
ul { padding-left: 1.2rem; margin: .2rem 0 .6rem; }
footer { margin-top: 3rem; border-top: 1px solid #d9dee6; padding-top: .8rem; }
@media print { header { background: none; color: #000; } header p { color: #000; } a { color: #000; } }
"""


def _local(moment: datetime) -> datetime:
    return moment.astimezone(_PARIS) if _PARIS else moment


def _day(moment: datetime) -> str:
    local = _local(moment)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


def _moment(moment: datetime) -> str:
    local = _local(moment)
    zone = "Paris time" if _PARIS else "UTC"
    return f"{_day(moment)}, {local:%H:%M} ({zone})"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _h2(anchor: str, english: str, french: str) -> str:
    return f'<h2 id="{anchor}">{_e(english)} <span class="fr" lang="fr">/ {_e(french)}</span></h2>'


def _list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _article(article: str) -> str:
    """'15' -> 'GDPR article 15'; a reference to another law stays as it is."""
    return f"GDPR article {article}" if article[:1].isdigit() else article


def _codes(values: Iterable[str]) -> str:
    return ", ".join(f"<code>{_e(value)}</code>" for value in values)


def _link(path: str, text: str) -> str:
    return f'<a href="{_e(path)}">{_e(text)}</a>'


class _Page:
    def __init__(self, report: ArchiveReport, register: Register, labels: Labels) -> None:
        self.report = report
        self.register = register
        self.labels = labels
        self.parts: list[str] = []

    def add(self, *html: str) -> None:
        self.parts.extend(html)

    # --- sections ------------------------------------------------------------------------------

    def header(self) -> None:
        r = self.report
        if r.portability:
            title = "Your personal data, ready to take elsewhere"
            right = "Answer to your request for data portability (GDPR article 20)"
        else:
            title = "Your personal data"
            right = "Answer to your request for access to your personal data (GDPR article 15)"
        self.add(
            '<header><div class="wrap">',
            f"<h1>{_e(title)}</h1>",
            f"<p>{_e(right)}</p>",
            f"<p>{_e(self.register.controller.name)} &middot; request {_e(r.request_id)} &middot; "
            f"received {_e(_day(r.received_at))} &middot; prepared {_e(_moment(r.generated_at))}</p>",
            "</div></header><main>",
        )

    def contents(self) -> None:
        entries = [
            ("summary", "In short / En bref"),
            ("deadline", "Deadline / Délai de réponse"),
            ("data", "Your data, system by system / Vos données"),
        ]
        if self.report.portability:
            entries.append(("portability", "What portability covers / Portabilité"))
        entries += [
            ("processing", "Why and how we process it / Traitements"),
            ("redactions", "Other people's data removed / Données de tiers"),
            ("rights", "Your rights / Vos droits"),
            ("reading", "How to read these files / Lire les fichiers"),
        ]
        items = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in entries)
        self.add(f'<nav aria-label="Contents"><ol>{items}</ol></nav>')

    def summary(self) -> None:
        r = self.report
        total = sum(s.records for s in r.systems)
        self.add(_h2("summary", "In short", "En bref"))
        self.add(
            "<p>We searched every system that holds personal data about our customers, applicants "
            f"and website visitors, using the identifiers below. We found <strong>{total:,}</strong> "
            f"record{'s' if total != 1 else ''} about you in {sum(1 for s in r.systems if s.records)} "
            f"of the {len(r.systems)} system{'s' if len(r.systems) != 1 else ''} searched.</p>"
        )
        unfinished = [s for s in r.systems if s.status != "completed"]
        if unfinished:
            lines = "".join(f"<li><strong>{_e(s.name)}</strong>: {_e(self._outcome(s))}</li>" for s in unfinished)
            self.add(
                '<div class="box warn"><p><strong>This answer is incomplete.</strong> '
                "Some systems could not be searched:</p>"
                f"<ul>{lines}</ul><p>Their data is not in this archive. You may ask our Data Protection "
                f"Officer ({_e(self.register.dpo.email)}) for it, quoting request {_e(r.request_id)}.</p></div>"
            )
        rows = []
        for s in r.systems:
            outcome_class = "ok" if s.status == "completed" else "bad"
            outcome = "Searched completely" if s.status == "completed" else self._outcome(s)
            snapshot = _moment(s.snapshot_at) if s.snapshot_at else "&ndash;"
            rows.append(
                f"<tr><td><strong>{_e(s.name)}</strong><br><span class='muted'>"
                f"{_e(self.labels.system(s.name, s.description))}</span></td>"
                f'<td class="{outcome_class}">{_e(outcome)}</td><td>{_e(snapshot) if s.snapshot_at else snapshot}</td>'
                f'<td class="n">{s.records:,}</td></tr>'
            )
        self.add(
            "<table><thead><tr><th>System</th><th>Outcome</th><th>Data as of</th>"
            '<th class="n">Records</th></tr></thead><tbody>',
            *rows,
            "</tbody></table>",
        )
        self.add("<h3>Identifiers used for the search</h3>")
        self.add(
            "<p class='muted'>Shown masked. Some were given in your request; others were found in one "
            "system and used to search the others.</p>"
        )
        rows = [
            f"<tr><td>{_e(_IDENTIFIER_WORDS.get(i.kind, i.kind))}</td><td><code>{_e(i.masked)}</code></td>"
            f"<td>{_e('given in your request' if i.source == 'request' else f'found in {i.source}')}</td></tr>"
            for i in r.identifiers
        ]
        self.add(
            "<table><thead><tr><th>Identifier</th><th>Value</th><th>Where it came from</th></tr></thead><tbody>",
            *rows,
            "</tbody></table>",
        )

    def _outcome(self, system: SystemReport) -> str:
        text = status_text(system.status)
        text = text[0].upper() + text[1:]
        if system.status == "timed_out" and system.attempts:
            text += f" (after {system.attempts} attempt{'s' if system.attempts != 1 else ''})"
        return text + "."

    def deadline(self) -> None:
        r = self.report
        self.add(_h2("deadline", "Deadline", "Délai de réponse"))
        facts = [
            ("Request received", _moment(r.received_at)),
            ("Answer due by", _day(r.due_at)),
            ("This answer prepared", _moment(r.generated_at)),
        ]
        self.add('<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>")
        if r.extension_reason:
            self.add(
                '<div class="box"><p>The deadline of one month was <strong>extended</strong> '
                f"(GDPR article 12(3)) to {_e(_day(r.due_at))}, for this reason:</p>"
                f"<p><em>{_e(r.extension_reason)}</em></p></div>"
            )
        else:
            self.add("<p>We must answer within one month of receiving your request (GDPR article 12(3)).</p>")

    def data(self) -> None:
        self.add(_h2("data", "Your data, system by system", "Vos données, système par système"))
        self.add(
            "<p>Each kind of data is in two files with the same content: a <strong>CSV</strong> file, which "
            "opens in a spreadsheet, and a <strong>JSON</strong> file, for programs. The <em>description</em> "
            "file explains each column.</p>"
        )
        for system in self.report.systems:
            self.add(
                f"<h3>{_e(system.name)} <span class='fr'>&mdash; {_e(self.labels.system(system.name))}</span></h3>"
            )
            if system.status != "completed":
                self.add(f'<p class="bad">{_e(self._outcome(system))}</p>')
                continue
            if not system.datasets and self.report.portability and system.received:
                self.add(
                    "<p>What this system holds about you is not covered by the right to portability "
                    '(see <a href="#portability">What portability covers</a>).</p>'
                )
                continue
            if not system.datasets:
                self.add("<p>Nothing about you was found in this system.</p>")
                continue
            rows = [self._dataset_row(d) for d in system.datasets]
            self.add(
                '<table><thead><tr><th>What</th><th class="n">Records</th><th>Files</th></tr></thead><tbody>',
                *rows,
                "</tbody></table>",
            )

    def _dataset_row(self, d: DatasetReport) -> str:
        note = f"<br><span class='muted'>{_e(d.note)}</span>" if d.note else ""
        files = " &middot; ".join(
            (_link(d.csv_path, "spreadsheet (CSV)"), _link(d.json_path, "JSON"), _link(d.schema_path, "description"))
        )
        return (
            f"<tr><td><strong>{_e(d.title)}</strong> <code>{_e(d.name)}</code>{note}</td>"
            f'<td class="n">{d.records:,}</td><td class="files">{files}</td></tr>'
        )

    def portability(self) -> None:
        if not self.report.portability:
            return
        self.add(_h2("portability", "What portability covers", "Ce que couvre la portabilité"))
        left_out = [self._activity_name(a) for a in self.report.not_portable]
        here = (", here: " + ", ".join(f"<em>{_e(name)}</em>" for name in left_out)) if left_out else ""
        self.add(
            "<p>The right to data portability (GDPR article 20) lets you receive, in a structured, commonly "
            "used and machine-readable format, the personal data <strong>you provided</strong> to us, "
            "actively (forms, your policy, documents) or by using our services (payments, visits to our "
            "sites), where we process it <strong>on the basis of your consent or of your policy</strong>. "
            "You may reuse it, or give it to another organisation.</p>"
            "<p>It does not cover, and this archive therefore leaves out:</p><ul>"
            "<li>data we derived or inferred ourselves: amounts we computed, decisions and steps of our "
            "procedures, assessments, fraud-prevention alerts, internal identifiers, the log of consultations "
            "of your file;</li>"
            "<li>data processed for another reason than your consent or your policy (our legitimate interest, "
            f"a legal obligation){here}.</li></ul>"
            "<p>All of your data, with these parts, is available through the <strong>right of "
            "access</strong> (GDPR article 15): ask us as described under <a href='#rights'>Your rights</a>.</p>"
        )

    def _activity_name(self, activity_id: str) -> str:
        found = self.register.activities.get(activity_id)
        return found.name if found else activity_id.replace("_", " ")

    def processing(self) -> None:
        self.add(_h2("processing", "Why and how we process your data", "Finalités et traitements"))
        self.add(
            f"<p>The controller of your data is <strong>{_e(self.register.controller.name)}</strong>, "
            f"{_e(self.register.controller.details)}, {_e(self.register.controller.address)}. For each purpose "
            "(processing activity) your data in this archive is used for, here is what GDPR article 15(1) and "
            "15(2) entitle you to know.</p>"
        )
        used = {*self.report.activities, "rights_management"}
        order = list(self.register.activities)
        # The register's order (the policy's), then any activity it does not describe.
        activities = [a for a in order if a in used] + sorted(used - set(order) - {"rights_management"})
        for activity_id in activities:
            activity = self.register.activities.get(activity_id)
            if activity is None:
                self.add(
                    f"<h3>{_e(activity_id.replace('_', ' ').capitalize())}</h3><p>The description of this "
                    f"processing is not available in this archive: please ask our Data Protection Officer "
                    f"({_e(self.register.dpo.email)}).</p>"
                )
                continue
            self._activity(activity)

    def _activity(self, a: Activity) -> None:
        files = [d for s in self.report.systems for d in s.datasets if a.id in d.activities]
        self.add(f'<h3 id="activity-{_e(a.id)}">{_e(a.name)}</h3>')
        if files:
            self.add(
                "<p class='muted'>Your data in this archive concerned: "
                + ", ".join(f"{_e(d.title)} ({_e(d.system)})" for d in files)
                + ".</p>"
            )
        self.add(*_activity_body(a, self.register.transfers))

    def redactions(self) -> None:
        r = self.report
        self.add(_h2("redactions", "Other people's data removed", "Données d'autres personnes retirées"))
        self.add(
            "<p>Your right of access may not reveal other people's personal data (GDPR article 15(4)). Where "
            "a record of yours also held another person's data &mdash; a member of your family on your "
            "policy, care someone else received &mdash; we removed their data and kept what concerns you. "
            "Each removal is listed here.</p>"
        )
        if not r.redactions:
            self.add("<p>Nothing had to be removed.</p>")
            return
        groups: dict[tuple[str, str, tuple[str, ...], str], list[str]] = {}
        for x in r.redactions:
            groups.setdefault((x.system, x.dataset, x.fields_removed, x.reason), []).append(x.record_key)
        rows = [
            f"<tr><td>{_e(self.labels.dataset(system, dataset).title)}<br><span class='muted'>{_e(system)} "
            f"<code>{_e(dataset)}</code></span></td><td>{_e(', '.join(removed))}</td><td>{_e(reason)}</td>"
            f'<td class="n">{len(keys):,}</td><td class="keys">{_codes(keys)}</td></tr>'
            for (system, dataset, removed, reason), keys in groups.items()
        ]
        self.add(
            f"<p>{len(r.redactions):,} removal{'s' if len(r.redactions) != 1 else ''}, grouped by kind:</p>"
            "<table><thead><tr><th>Data</th><th>Removed</th><th>Why</th><th class='n'>Records</th>"
            "<th>Which records</th></tr></thead><tbody>",
            *rows,
            "</tbody></table>",
        )

    def rights(self) -> None:
        reg = self.register
        self.add(*_rights(reg.dpo, reg.supervisory_authority, reg.rights))

    def reading(self) -> None:
        self.add(_h2("reading", "How to read these files", "Comment lire les fichiers"))
        self.add(
            "<ul>"
            "<li><code>index.html</code>: this page.</li>"
            "<li><code>data/&lt;system&gt;/&lt;data&gt;.csv</code>: your data as a table, one line per record "
            "(UTF-8, comma-separated, first line the column names). Lists and nested values are written in "
            "JSON inside their cell.</li>"
            "<li><code>data/&lt;system&gt;/&lt;data&gt;.json</code>: the same records in JSON, for programs.</li>"
            "<li><code>schemas/&lt;system&gt;/&lt;data&gt;.schema.json</code>: the description of each field "
            "(a JSON Schema): what it means, where it comes from (<code>x-provenance</code>) and the purpose "
            "it is processed for (<code>x-activity</code>).</li>"
            "<li><code>processing.json</code>: the information of the section <em>Why and how we process "
            "your data</em>, for programs.</li>"
            "<li><code>manifest.json</code>: the list of files with their size and SHA-256 fingerprint, the "
            "outcome of each system's search and the removals; its format is in "
            "<code>schemas/manifest.schema.json</code>.</li>"
            "</ul>"
            "<h4>Where each value comes from</h4><ul>"
            "<li><strong>provided</strong>: you gave it to us (a form, your policy, a document);</li>"
            "<li><strong>observed</strong>: recorded as you used our services (payments, visits, dates);</li>"
            "<li><strong>derived</strong>: computed or decided by us (amounts reimbursed, reminders, "
            "assessments).</li></ul>"
            "<h4>Codes</h4><p>Where a field holds an internal code (a care category, a claim status, a step "
            "of the non-payment procedure...), the next column, named after it with <code>_label</code>, "
            "gives it in words, for example <code>care_category</code> and <code>care_category_label</code>. "
            "Amounts ending in <code>_cents</code> are in euro cents (12345 is 123.45 &euro;). Times are in "
            "UTC (ISO 8601).</p>"
        )
        if not self.report.portability:
            self.add(
                "<h4>Consultations of your file</h4><p>The log of consultations "
                "(<code>file_access_log</code>, where present) lists each time one of our employees opened "
                "your file: the date, the employee's role and the purpose. It does not name the employees: "
                "their identity is their own personal data.</p>"
            )

    def footer(self) -> None:
        reg = self.register
        self.add(
            "<footer class='muted'>"
            f"<p>{_e(reg.controller.name)}, {_e(reg.controller.address)}. Data Protection Officer: "
            f"{_e(reg.dpo.email)}.</p><p>Register of processing activities version {_e(reg.version)} "
            f"({_e(reg.source)}); decode table version {_e(self.labels.version)}; request "
            f"{_e(self.report.request_id)}.</p></footer></main>"
        )


@lru_cache(maxsize=16)
def _rights(dpo: Contact, authority: Contact, rights: tuple[Right, ...]) -> tuple[str, ...]:
    """The section on the subject's rights: the register's alone, made once per register."""
    parts: list[str] = []

    def add(*html: str) -> None:
        parts.extend(html)

    add(_h2("rights", "Your rights and how to exercise them", "Vos droits et comment les exercer"))
    add(
        '<div class="box"><p><strong>To exercise any of your rights</strong>, write to our Data Protection '
        f"Officer, proving your identity and stating your request:</p><p>E-mail: "
        f'<a href="mailto:{_e(dpo.email)}">{_e(dpo.email)}</a><br>Post: {_e(dpo.address)}</p>'
        f"<p><strong>To complain to the CNIL</strong>, the French data protection authority: online at "
        f"{_e(authority.url)}, or by post to {_e(authority.address)}.</p></div>"
    )
    rows = [
        f"<tr><td><strong>{_e(right.name)}</strong><br><span class='muted'>{_e(_article(right.article))}"
        f"</span></td><td>{_e(right.applies)}</td><td>{_e(right.how)}</td></tr>"
        for right in rights
    ]
    add(
        "<table><thead><tr><th>Right</th><th>When it applies</th><th>How</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
    )
    return tuple(parts)


@lru_cache(maxsize=256)
def _activity_body(a: Activity, t: Transfers) -> tuple[str, ...]:
    """What the page says of an activity, after the data it concerned: the register's alone,
    so made once per activity (and the register's transfers) rather than once per page."""
    parts: list[str] = []

    def add(*html: str) -> None:
        parts.extend(html)

    add("<h4>Purposes <span class='muted'>(art. 15(1)(a))</span></h4>", _list(a.purposes))
    add("<h4>Legal basis</h4>", _list(f"{b.text} (GDPR article {b.article})" for b in a.legal_bases))
    add("<h4>Categories of data <span class='muted'>(art. 15(1)(b))</span></h4>", _list(a.categories))
    add("<h4>Recipients <span class='muted'>(art. 15(1)(c))</span></h4>", _list(a.recipients))
    if a.transfers_outside_eea:
        add(
            "<h4>Transfers outside the European Economic Area <span class='muted'>(art. 15(2))</span></h4>"
            f"<p>Countries: {_e(', '.join(t.countries))}. {_e(t.safeguards)}</p>"
        )
    else:
        add("<h4>Transfers outside the European Economic Area</h4><p>None.</p>")
    add(
        "<h4>How long we keep it <span class='muted'>(art. 15(1)(d))</span></h4>",
        _list(f"{r.data}: {r.period}" for r in a.retention),
    )
    add(
        "<h4>Where it comes from <span class='muted'>(art. 15(1)(g))</span></h4>",
        _list(a.sources),
    )
    add("<h4>Automated decisions <span class='muted'>(art. 15(1)(h))</span></h4>")
    if not a.automated_decisions:
        add("<p>No decision is taken about you by automated means alone in this processing.</p>")
    for decision in a.automated_decisions:
        add(
            f'<div class="box"><p><strong>{_e(decision.name)}.</strong> {_e(decision.logic)}</p>'
            f"<p><strong>What it means for you:</strong> {_e(decision.significance)}</p>"
            f"<p><strong>Your rights:</strong> {_e(decision.contest)}</p></div>"
        )
    add(
        "<p class='muted'>Your rights to rectification, erasure, restriction and objection, and to complain "
        "to the CNIL (art. 15(1)(e) and (f)), are described under <a href='#rights'>Your rights</a>.</p>"
    )
    return tuple(parts)


def render_index(report: ArchiveReport, register: Register, labels: Labels) -> str:
    """The whole page, as a string (encode it in UTF-8)."""
    page = _Page(report, register, labels)
    title = "Your personal data" if not report.portability else "Your personal data (portability)"
    page.add(
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)} &mdash; {_e(register.controller.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
    )
    page.header()
    page.contents()
    page.summary()
    page.deadline()
    page.data()
    page.portability()
    page.processing()
    page.redactions()
    page.rights()
    page.reading()
    page.footer()
    page.add("</body></html>")
    return "\n".join(page.parts)
