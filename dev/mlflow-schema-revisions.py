# Runs MLflow's own schema migrations on an empty Postgres database, one Alembic revision at a
# time, and prints (JSON) the objects each revision has in the `public` schema: tables with their
# columns, sequences, enum types, indexes, functions and triggers. dev/generate-mlflow-schema.ts drives it and writes
# src/activities/database/mlflow-revisions.json, which tells the shared-database steps which
# objects are MLflow's at the revision a store carries.
#   python3 dev/mlflow-schema-revisions.py postgresql+psycopg2://user:pw@host:port/empty_db
import json
import os
import sys

import mlflow
import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

CATALOG = {
    "tables": """
        SELECT c.relname AS name,
               json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum) AS columns
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        GROUP BY c.relname ORDER BY c.relname COLLATE "C"
    """,
    "sequences": """
        SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'S' ORDER BY c.relname COLLATE "C"
    """,
    "types": """
        SELECT t.typname AS name, json_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE n.nspname = 'public' GROUP BY t.typname ORDER BY t.typname COLLATE "C"
    """,
    "indexes": """
        SELECT i.relname AS name, t.relname AS "table"
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = 'public' ORDER BY i.relname COLLATE "C"
    """,
    # e.g. prevent_secrets_aad_mutation(), which a trigger on `secrets` calls (MLflow 3.x).
    "functions": """
        SELECT p.proname AS name, pg_get_function_identity_arguments(p.oid) AS args
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' ORDER BY p.proname COLLATE "C", 2
    """,
    "triggers": """
        SELECT t.tgname AS name, c.relname AS "table"
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY t.tgname COLLATE "C", 2
    """,
}


def snapshot(conn):
    out = {}
    for kind, sql in CATALOG.items():
        rows = conn.execute(sqlalchemy.text(sql)).mappings().all()
        out[kind] = [dict(r) for r in rows]
    return out


def main(url):
    directory = os.path.join(os.path.dirname(mlflow.__file__), "store", "db_migrations")
    config = Config(os.path.join(directory, "alembic.ini"))
    config.set_main_option("script_location", directory)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    script = ScriptDirectory.from_config(config)
    # MLflow's history is linear (one base, one head): walk it oldest first.
    order = [r.revision for r in reversed(list(script.walk_revisions()))]
    engine = sqlalchemy.create_engine(url)
    revisions = []
    # As mlflow.store.db.utils._initialize_tables does: the initial tables, then every migration.
    InitialBase.metadata.create_all(engine)
    for revision in order:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        with engine.connect() as conn:
            stamped = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalars().all()
            if stamped != [revision]:
                raise SystemExit(f"after upgrading to {revision}, alembic_version holds {stamped}")
            revisions.append({"revision": revision, **snapshot(conn)})
        print(f"{revision}: {len(revisions[-1]['tables'])} tables", file=sys.stderr)
    print(json.dumps({"mlflowVersion": mlflow.__version__, "revisions": revisions}))


if __name__ == "__main__":
    main(sys.argv[1])
