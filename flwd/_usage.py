"""What ``flwd``, ``flwd -h`` and ``flwd --help`` print: a module of its own, so that
:mod:`flwd._entry` answers them (and ``--version``) before :mod:`flwd.cli` and everything it
imports is loaded (~200 ms)."""

USAGE = """\
usage: flwd [--scripts DIR] [--data-dir DIR] [--db URL] [--server URL] [--local] [--debug] COMMAND ...

Run a job:
  flwd JOB [FLAGS]            e.g. flwd demo --name alice (words or dots: flwd examples fail)
  flwd JOB --help             the job's flags

Commands:
  flwd :jobs [--json]         list jobs under scripts/**/config.d/config.yaml
  flwd :plan JOB [FLAGS]      preview a run (secrets shown as [secret])
  flwd :runs [--job J] [--status S] [--json]
  flwd :logs RUN [--follow] [--json]
  flwd :cancel RUN            ask a running run to stop
  flwd :sources list|add|remove|refresh
                              job sources: folders, git repositories, OCI add-ons
  flwd :serve [--bind H:P] [--dev] ...
                              the REST + SSE server (flwd :serve --help)
  flwd :tokens list|create|revoke|import [--tokens FILE]
                              API tokens: create --name N --scope S [--expires 30d]
  flwd :gc --retain-runs N    evict old finished runs from the Core DB
  flwd :db migrate|status     create or upgrade the Core DB's schema; say where it is
  flwd :kv get|put|delete|list NAMESPACE [KEY]
                              the KV jobs keep values in between runs (no token)
  flwd init KIND PATH         scaffold a job (bash, sh, python, pwsh)
  flwd completion SHELL       print the completion script of bash, zsh, fish or powershell

Global options (before the command; also FLWD_SCRIPTS, FLWD_DATA_DIR, FLWD_DB, FLWD_SERVER):
  --scripts DIR               the scripts directory (default: ./scripts, searched upwards)
  --data-dir DIR              where the Core DB and run directories live
  --db URL                    the Core DB elsewhere: postgresql://USER@HOST/DB (password in
                              PGPASSWORD, ~/.pgpass or FLWD_DB, never here), or a SQLite
                              file; also after a :command (flwd :serve --db URL)
  --server URL                remote mode: jobs, plans, runs, logs and cancel go to a
                              running 'flwd :serve' (the token comes from FLWD_TOKEN)
  --local                     run here even when a local 'flwd :serve' owns the data dir
                              (also FLWD_LOCAL=1); otherwise a job's run goes to it
  --debug                     show tracebacks for internal errors
"""
