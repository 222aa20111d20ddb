"""How big a population is: the demo subject's volumes and the background's."""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class PopulationSizes:
    """Sizes of a generated population. The defaults make a small population that loads in about a second.

    The `demo_*` values are the demo subject's own volumes; `pages_per_visit` is a mean (each visit has
    between half of it and one and a half times it). The others shape the background: `households`
    ordinary households besides the demo subject's and the namesake's, each person with about
    `claims_per_person` claims, `visits_per_person` visits and `interactions_per_contact` CRM
    interactions; `lone_candidates` people known only to recruitment (the former candidate among them),
    `anonymous_visitors` cookies never tied to a person (the anonymous visitor among them), and
    `prospects` CRM contacts who never took a policy.
    """

    households: int = 20
    demo_claims: int = 24
    demo_visits: int = 12
    pages_per_visit: int = 6
    demo_interactions: int = 8
    claims_per_person: int = 3
    visits_per_person: int = 2
    interactions_per_contact: int = 2
    lone_candidates: int = 5
    anonymous_visitors: int = 5
    prospects: int = 5

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"PopulationSizes.{f.name} must not be negative")
        if self.demo_claims < 10:
            raise ValueError("PopulationSizes.demo_claims must be at least 10 (claims of every kind)")
        if self.demo_visits < 2:
            raise ValueError("PopulationSizes.demo_visits must be at least 2 (logged in and anonymous)")
        if self.pages_per_visit < 1 or self.demo_interactions < 1:
            raise ValueError("PopulationSizes.pages_per_visit and demo_interactions must be at least 1")
        if self.lone_candidates < 1 or self.anonymous_visitors < 1:
            raise ValueError("PopulationSizes needs the former candidate and the anonymous visitor")

    @classmethod
    def benchmark(cls) -> "PopulationSizes":
        """The benchmark's heavy subject: 20,000 claims, 20,000 visits (~200,000 page views), 5,000
        interactions, among 500 background households."""
        return cls(
            households=500,
            demo_claims=20_000,
            demo_visits=20_000,
            pages_per_visit=10,
            demo_interactions=5_000,
            lone_candidates=50,
            anonymous_visitors=200,
            prospects=100,
        )
