"""Failure handlers: a run that ends FAILED, TIMEOUT or INTERNAL_ERROR starts a run of its
flow's ``on_failure`` flow (else its project's ``on_failure_flow``), in the transaction
that ends it.

* ``projects.on_failure_flow``: the project's default handler, by flow name (NULL: none).
* ``flow_runs.handles_run``: the failed run a handler's run was started for (NULL for
  every other run). A handler's own end starts no handler, so handlers never chain.
* ``sluice_start_failure_handler`` (trigger ``flow_runs_failure_handler``): on the run's
  transition into one of those statuses — a transition happens once per attempt, and the
  handler's row commits with it or not at all, so every failure that commits starts exactly
  one handler run, whatever crashes around it (a retried run that fails again starts another).
  Only top-level runs: a sub-flow's failure reaches its parent, whose own failure is the
  one handled. The handler is the live version (``sluice_live_flows``) of an enabled flow
  of the same project; a missing or disabled one starts nothing and changes nothing of the
  failed run (a WARNING in the server log). Its run is an ordinary QUEUED run
  (``flow_runs_created`` enqueues its job), with the failed run's job attempts and time
  budget (its deadline less its creation; an hour when it had none), and the trigger
  ``{"type": "failure", "body": {run_id, flow, version, status, error,
  failed_step: {id, error} | null, console_path}}``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = r"""
ALTER TABLE projects ADD COLUMN on_failure_flow text CHECK (on_failure_flow <> '');
ALTER TABLE flow_runs ADD COLUMN handles_run uuid REFERENCES flow_runs (id) ON DELETE SET NULL;
CREATE INDEX flow_runs_handles_run ON flow_runs (handles_run) WHERE handles_run IS NOT NULL;

CREATE FUNCTION sluice_start_failure_handler() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    handler text;
    failed_flow text;
    live record;
    step record;
BEGIN
    IF NEW.parent_run_id IS NOT NULL OR NEW.handles_run IS NOT NULL THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(v.definition ->> 'on_failure', p.on_failure_flow), f.name
    INTO handler, failed_flow
    FROM flow_versions v, projects p, flows f
    WHERE v.id = NEW.flow_version_id AND p.id = NEW.project_id AND f.id = NEW.flow_id;
    IF handler IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT l.flow_id, l.version_id, l.version INTO live
    FROM sluice_live_flows l
    WHERE l.project_id = NEW.project_id AND l.name = handler AND l.enabled;
    IF NOT FOUND THEN
        RAISE WARNING 'run % of flow % ended %: its failure handler % is not an enabled flow',
            NEW.id, failed_flow, NEW.status, handler;
        RETURN NULL;
    END IF;
    SELECT s.step_id, s.error INTO step
    FROM step_runs s
    WHERE s.run_id = NEW.id AND s.status = 'FAILED'
    ORDER BY s.id DESC LIMIT 1;
    INSERT INTO flow_runs (
        project_id, flow_id, flow_version_id, version, trigger, resume_secret, deadline_at,
        job_max_attempts, handles_run
    ) VALUES (
        NEW.project_id, live.flow_id, live.version_id, live.version,
        jsonb_build_object(
            'type', 'failure',
            'body', jsonb_build_object(
                'run_id', NEW.id,
                'flow', failed_flow,
                'version', NEW.version,
                'status', NEW.status,
                'error', NEW.error,
                'failed_step', CASE WHEN step.step_id IS NULL THEN NULL
                    ELSE jsonb_build_object('id', step.step_id, 'error', step.error) END,
                'console_path', '/console/runs/' || NEW.id
            ),
            'headers', '{}'::jsonb,
            'query', '{}'::jsonb
        ),
        uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()),
        now() + greatest(coalesce(OLD.deadline_at - NEW.created_at, interval '1 hour'),
                         interval '1 minute'),
        NEW.job_max_attempts,
        NEW.id
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER flow_runs_failure_handler AFTER UPDATE OF status ON flow_runs
FOR EACH ROW
WHEN (NEW.status IN ('FAILED', 'TIMEOUT', 'INTERNAL_ERROR')
      AND NOT sluice_run_is_final(OLD.status))
EXECUTE FUNCTION sluice_start_failure_handler();
"""

DOWNGRADE = r"""
DROP TRIGGER flow_runs_failure_handler ON flow_runs;
DROP FUNCTION sluice_start_failure_handler();
ALTER TABLE flow_runs DROP COLUMN handles_run;
ALTER TABLE projects DROP COLUMN on_failure_flow;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
