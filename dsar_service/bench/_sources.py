"""The source systems' data: a generated population loaded into the stack, and the subjects to ask for.

The heavy subject is the population's demo subject (asked for by e-mail and NIR, as the demo does);
the ordinary subjects are insured people of the background households, each asked for by e-mail:
the policy system finds their person id, the other systems are searched by it.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from connectors.testing.population import Population, PopulationSizes, generate
from dsar_common.settings import Settings
from dsar_service.client import SubjectFields
from dsar_service.demo import _database_url, load_sources


@dataclass(frozen=True)
class Loaded:
    """A loaded population and how many rows went in."""

    population: Population
    rows: int


async def fill_sources(settings: Settings, seed: int, sizes: PopulationSizes) -> Loaded:
    """Drop the five systems' tables and collections on the stack's servers, load a fresh population."""
    population = generate(seed, sizes)
    return Loaded(population, await load_sources(settings, population))


def heavy_subject(population: Population) -> SubjectFields:
    """The demo subject, by e-mail and NIR."""
    return SubjectFields(emails=[population.demo.email], nir=population.demo.nir)


async def ordinary_subjects(settings: Settings, population: Population, count: int) -> list[str]:
    """E-mails of `count` distinct insured people outside the demo's and the namesake's households.

    Read from the policy system, in person id order (the same ones on every run of a seed). Raises
    ValueError if the population has fewer.
    """
    excluded = _cast_person_ids(population)
    connection = await asyncpg.connect(_database_url(settings.source_postgres_url, "policy"))
    try:
        rows = await connection.fetch(
            """SELECT lower(email) AS email FROM insured_person
               WHERE email IS NOT NULL AND person_id <> ALL($1::uuid[])
               ORDER BY person_id LIMIT $2""",
            excluded,
            count,
        )
    finally:
        await connection.close()
    emails = list(dict.fromkeys(row["email"] for row in rows))
    if len(emails) < count:
        raise ValueError(f"the population has {len(emails)} ordinary subjects with an e-mail, {count} are needed")
    return emails


def _cast_person_ids(population: Population) -> Sequence[str]:
    demo = population.demo
    return [demo.person_id, demo.spouse_person_id, *demo.children_person_ids, population.namesake.person_id]
