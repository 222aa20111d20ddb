"""Every path the stack uses inside its state folder, named in one place.

<state dir>/
  stack.toml          the settings the other commands read (mode 0600: it holds keys)
  stack.lock          held while an `up` or `down` runs, so two never interleave
  run/<component>.json  the pid record of a running component (pid, port, what it is)
  logs/<component>.log  the component's stdout and stderr, truncated at each start
  logs/postgres-initdb.log  initdb's output, when the embedded PostgreSQL's data folder is made
  mongodb/            SecantusDB's storage (kept across `down`/`up`)
  postgres/           the embedded PostgreSQL's data directory, when one is used (kept likewise)
  secantusd.toml      an empty SecantusDB configuration, so that it reads no other
"""

from dataclasses import dataclass
from pathlib import Path

from dsar_service.stack._model import Component


@dataclass(frozen=True)
class Layout:
    """The paths of one state folder; `root` is absolute, so detached servers never depend on a cwd."""

    root: Path

    @classmethod
    def of(cls, state_dir: Path) -> "Layout":
        return cls(state_dir.expanduser().resolve())

    @property
    def settings_file(self) -> Path:
        return self.root / "stack.toml"

    @property
    def lock_file(self) -> Path:
        return self.root / "stack.lock"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def mongodb_storage(self) -> Path:
        return self.root / "mongodb"

    @property
    def mongodb_config(self) -> Path:
        return self.root / "secantusd.toml"

    @property
    def postgres_data(self) -> Path:
        return self.root / "postgres"

    @property
    def initdb_log(self) -> Path:
        return self.log_dir / "postgres-initdb.log"

    def pid_record(self, component: Component) -> Path:
        return self.run_dir / f"{component.value}.json"

    def log(self, component: Component) -> Path:
        return self.log_dir / f"{component.value}.log"

    def create(self) -> None:
        """Make the folder and its subfolders (owner-only: the settings file holds keys)."""
        for folder in (self.root, self.run_dir, self.log_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
