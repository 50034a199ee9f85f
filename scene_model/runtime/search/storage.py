"""The study's storage, from ``hydra.sweeper.storage``: a database URL or the path of a journal file.

``sqlite:///path.db`` suits one sweeper on one machine, any other SQLAlchemy URL (``postgresql://...``,
``mysql+pymysql://...``) a database server, and a plain path Optuna's JournalStorage on a file: several
processes on several machines share it through a shared file system, with no server.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.engine import make_url

from scene_model.errors import ConfigError

KEY = "hydra.sweeper.storage"


def open_storage(url: str | None) -> BaseStorage | None:
    """The storage ``url`` names (None: the study lives in memory); what cannot be opened is one line."""
    if not url:
        return None
    try:
        return journal_storage(url) if "://" not in url else database_storage(url)
    except OSError as err:
        raise ConfigError(f"{KEY}: cannot write {err.filename or url}: {err.strerror or err}") from None


def journal_storage(path: str) -> JournalStorage:
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # the file is made by the storage, not its directory
    return JournalStorage(JournalFileBackend(path))


def database_storage(url: str) -> RDBStorage:
    try:
        database = make_url(url).database
        if url.startswith("sqlite") and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # SQLite makes the file, not its directory
        return RDBStorage(url)
    except ImportError as err:  # optuna's, raised from the driver's ModuleNotFoundError
        driver = getattr(err.__cause__, "name", None) or getattr(err, "name", None)
        raise ConfigError(f"{KEY}: {url} needs the database driver {driver!r}, which is not installed") from None
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as err:
        raise ConfigError(
            f"{KEY}: {url!r} is no database URL SQLAlchemy knows ({err}); give sqlite:///path.db, "
            "postgresql://user:password@host/db, ... or the path of a journal file"
        ) from None
    except sqlalchemy.exc.OperationalError as err:
        raise ConfigError(f"{KEY}: cannot open {url}: {str(err.orig).splitlines()[0]}") from None
