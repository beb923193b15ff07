-- The schema at the latest migration, written by `./dev schema` (python -m ops.snapshot)
-- from pg_dump; tests/integration/test_schema.py checks that `upgrade head` produces
-- exactly this. Edit the migrations, never this file.

SET check_function_bodies = false;

CREATE TYPE public.job_state AS ENUM (
    'queued',
    'running'
);

CREATE TABLE public.jobs (
    id bigint NOT NULL,
    kind text NOT NULL,
    project_id bigint,
    run_id uuid,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    priority smallint DEFAULT 0 NOT NULL,
    run_at timestamp with time zone DEFAULT now() NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 5 NOT NULL,
    state public.job_state DEFAULT 'queued'::public.job_state NOT NULL,
    lease_owner text,
    lease_expires_at timestamp with time zone,
    last_error text,
    idempotency_key text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT jobs_attempt_check CHECK ((attempt >= 0)),
    CONSTRAINT jobs_kind_check CHECK ((kind <> ''::text)),
    CONSTRAINT jobs_lease_matches_state CHECK (((state = 'running'::public.job_state) = ((lease_owner IS NOT NULL) AND (lease_expires_at IS NOT NULL)))),
    CONSTRAINT jobs_max_attempts_check CHECK ((max_attempts >= 1))
)
WITH (fillfactor='80', autovacuum_vacuum_scale_factor='0.0', autovacuum_vacuum_threshold='1000', autovacuum_vacuum_insert_scale_factor='0.0', autovacuum_vacuum_insert_threshold='1000', autovacuum_analyze_scale_factor='0.0', autovacuum_analyze_threshold='1000', autovacuum_vacuum_cost_delay='0');

CREATE FUNCTION public.sluice_claim_jobs(p_owner text, p_limit integer, p_lease_seconds double precision, p_now timestamp with time zone) RETURNS SETOF public.jobs
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_lease_expires_at timestamptz := v_now + make_interval(secs => p_lease_seconds);
    v_remaining integer := p_limit;
    v_round integer := 0;
    v_saturated bigint[];
    v_candidates bigint[];
    v_gated bigint[];
    v_busy bigint[] := '{}';
    v_project bigint;
    v_key bigint;
    v_admitted integer;
BEGIN
    WHILE v_remaining > 0 AND v_round < 4 LOOP
        v_round := v_round + 1;

        -- Counts stop at each limit, so running jobs of unlimited projects cost nothing.
        SELECT coalesce(array_agg(p.id), '{}') INTO v_saturated
        FROM projects p
        WHERE p.concurrency_limit IS NOT NULL
          AND (
              SELECT count(*)
              FROM (
                  SELECT 1
                  FROM jobs r
                  WHERE r.state = 'running' AND r.project_id = p.id
                  LIMIT p.concurrency_limit
              ) running
          ) >= p.concurrency_limit;

        SELECT coalesce(array_agg(c.id), '{}') INTO v_candidates
        FROM (
            -- candidates: begin (tests EXPLAIN this text: it must scan jobs_claim_order)
            SELECT j.id
            FROM jobs j
            WHERE j.state = 'queued'
              AND j.run_at <= v_now
              AND (j.project_id IS NULL OR j.project_id <> ALL (v_saturated || v_busy))
            ORDER BY j.priority, j.run_at, j.id
            LIMIT v_remaining
            FOR UPDATE SKIP LOCKED
            -- candidates: end
        ) c;

        EXIT WHEN cardinality(v_candidates) = 0;

        SELECT array_agg(DISTINCT j.project_id) INTO v_gated
        FROM jobs j
        JOIN projects p ON p.id = j.project_id
        WHERE j.id = ANY (v_candidates) AND p.concurrency_limit IS NOT NULL;

        IF v_gated IS NULL THEN
            RETURN QUERY
            UPDATE jobs j
            SET state = 'running',
                attempt = j.attempt + 1,
                lease_owner = p_owner,
                lease_expires_at = v_lease_expires_at
            WHERE j.id = ANY (v_candidates)
            RETURNING j.*;
            RETURN;
        END IF;

        FOR v_project, v_key IN
            SELECT g, sluice_project_gate_key(g) AS k FROM unnest(v_gated) AS g ORDER BY k, g
        LOOP
            IF v_round = 1 THEN
                PERFORM pg_advisory_xact_lock(v_key);
            ELSIF NOT pg_try_advisory_xact_lock(v_key) THEN
                v_busy := v_busy || v_project;
            END IF;
        END LOOP;

        RETURN QUERY
        WITH candidate AS (
            SELECT j.id,
                   j.project_id,
                   p.concurrency_limit,
                   row_number() OVER (
                       PARTITION BY j.project_id ORDER BY j.priority, j.run_at, j.id
                   ) AS rank
            FROM jobs j
            LEFT JOIN projects p ON p.id = j.project_id
            WHERE j.id = ANY (v_candidates)
        ),
        running AS (
            SELECT project_id, count(*) AS n
            FROM jobs
            WHERE state = 'running' AND project_id = ANY (v_gated)
            GROUP BY project_id
        ),
        admitted AS (
            SELECT c.id
            FROM candidate c
            LEFT JOIN running r ON r.project_id = c.project_id
            WHERE c.concurrency_limit IS NULL
               OR (c.rank <= c.concurrency_limit - coalesce(r.n, 0)
                   AND c.project_id <> ALL (v_busy))
        )
        UPDATE jobs j
        SET state = 'running',
            attempt = j.attempt + 1,
            lease_owner = p_owner,
            lease_expires_at = v_lease_expires_at
        FROM admitted a
        WHERE j.id = a.id
        RETURNING j.*;

        GET DIAGNOSTICS v_admitted = ROW_COUNT;
        -- Nothing turned away: the batch is full or the queue has no more ready jobs.
        EXIT WHEN v_admitted = cardinality(v_candidates);
        v_remaining := v_remaining - v_admitted;
    END LOOP;
END
$$;

CREATE FUNCTION public.sluice_continue_run(p_run uuid, p_at timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO jobs (kind, project_id, run_id, payload, run_at, max_attempts, idempotency_key)
    SELECT 'execute_run', r.project_id, r.id, jsonb_build_object('run_id', r.id),
           coalesce(p_at, now()), r.job_max_attempts, 'run:' || r.id
    FROM flow_runs r
    WHERE r.id = p_run AND NOT sluice_run_is_final(r.status)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL
    DO UPDATE SET run_at = least(jobs.run_at, EXCLUDED.run_at)
    WHERE jobs.state = 'queued';
END
$$;

CREATE FUNCTION public.sluice_lease_held(p_job public.jobs, p_owner text, p_attempt integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (((p_job).state = 'running'::public.job_state) AND ((p_job).lease_owner = p_owner) AND ((p_job).attempt = p_attempt));

CREATE FUNCTION public.sluice_project_gate_key(p_project bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN hashtextextended(('sluice:project-gate:'::text || (p_project)::text), (0)::bigint);

CREATE FUNCTION public.sluice_record_steps(p_run uuid, p_steps jsonb) RETURNS integer
    LANGUAGE sql
    AS $$
    WITH written AS (
        INSERT INTO step_runs (
            run_id, key, step_id, type, status, attempts, output, error, stdout, stderr,
            started_at, finished_at
        )
        SELECT p_run, s.key, s.step_id, s.type, s.status, s.attempts, s.output, s.error,
               s.stdout, s.stderr, s.started_at, s.finished_at
        FROM jsonb_to_recordset(p_steps) AS s (
            key text, step_id text, type text, status text, attempts integer, output jsonb,
            error text, stdout text, stderr text, started_at timestamptz,
            finished_at timestamptz
        )
        ON CONFLICT (run_id, key) DO UPDATE
        SET status = EXCLUDED.status, attempts = EXCLUDED.attempts, output = EXCLUDED.output,
            error = EXCLUDED.error, stdout = EXCLUDED.stdout, stderr = EXCLUDED.stderr,
            started_at = coalesce(step_runs.started_at, EXCLUDED.started_at),
            finished_at = EXCLUDED.finished_at
        RETURNING 1
    )
    SELECT count(*)::integer FROM written
$$;

CREATE FUNCTION public.sluice_run_attempt() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.status = 'RUNNING' AND NOT EXISTS (
        SELECT FROM run_attempts WHERE run_id = NEW.id AND finished_at IS NULL
    ) THEN
        INSERT INTO run_attempts (run_id, attempt, started_at)
        SELECT NEW.id, coalesce(max(attempt), 0) + 1, now()
        FROM run_attempts WHERE run_id = NEW.id;
    ELSIF sluice_run_is_final(NEW.status) THEN
        UPDATE run_attempts SET finished_at = greatest(NEW.finished_at, started_at)
        WHERE run_id = NEW.id AND finished_at IS NULL;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION public.sluice_run_created() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM sluice_continue_run(NEW.id, NEW.created_at);
    RETURN NULL;
END
$$;

CREATE FUNCTION public.sluice_run_finished() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.status IN ('CANCELED', 'TIMEOUT') THEN
        WITH RECURSIVE below AS (
            SELECT id, parent_run_id FROM flow_runs
            WHERE parent_run_id = NEW.id AND NOT sluice_run_is_final(status)
            UNION ALL
            SELECT r.id, r.parent_run_id FROM flow_runs r JOIN below ON r.parent_run_id = below.id
            WHERE NOT sluice_run_is_final(r.status)
        )
        UPDATE flow_runs r
        SET status = NEW.status,
            error = coalesce(r.error, CASE WHEN below.parent_run_id = NEW.id
                THEN 'parent run ' || NEW.id || ' ended: ' || NEW.status
                ELSE 'ancestor run ' || NEW.id || ' ended: ' || NEW.status END),
            finished_at = NEW.finished_at
        FROM below
        WHERE r.id = below.id AND NOT sluice_run_is_final(r.status);
    END IF;
    DELETE FROM waitpoints WHERE run_id = NEW.id AND state = 'pending';
    DELETE FROM jobs WHERE run_id = NEW.id AND state = 'queued';
    IF NEW.parent_run_id IS NOT NULL AND NEW.parent_step_key IS NOT NULL THEN
        UPDATE waitpoints
        SET state = 'completed',
            completed_at = NEW.finished_at,
            payload = jsonb_build_object(
                'run_id', NEW.id, 'status', NEW.status, 'output', NEW.output,
                'response', NEW.response, 'error', NEW.error)
        WHERE run_id = NEW.parent_run_id AND step_key = NEW.parent_step_key
          AND state = 'pending';
        IF FOUND THEN
            PERFORM sluice_continue_run(NEW.parent_run_id, NEW.finished_at);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.sluice_run_is_final(p_status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT p_status NOT IN ('QUEUED', 'RUNNING', 'PAUSED')
$$;

CREATE FUNCTION public.sluice_run_job_died() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.run_id IS NOT NULL AND NEW.kind = 'execute_run' THEN
        UPDATE flow_runs
        SET status = 'FAILED',
            error = 'the run could not be executed: ' || NEW.last_error,
            finished_at = NEW.died_at
        WHERE id = NEW.run_id AND NOT sluice_run_is_final(status);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.sluice_start_failure_handler() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

CREATE TABLE public.api_keys (
    id bigint NOT NULL,
    project_id bigint NOT NULL,
    prefix text NOT NULL,
    key_hash bytea NOT NULL,
    name text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone
);

ALTER TABLE public.api_keys ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.api_keys_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.dead_jobs (
    id bigint NOT NULL,
    kind text NOT NULL,
    project_id bigint,
    run_id uuid,
    payload jsonb NOT NULL,
    priority smallint NOT NULL,
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    last_owner text,
    last_error text NOT NULL,
    idempotency_key text,
    created_at timestamp with time zone NOT NULL,
    died_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.flow_runs (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    project_id bigint NOT NULL,
    flow_id uuid NOT NULL,
    flow_version_id bigint NOT NULL,
    version integer NOT NULL,
    status text DEFAULT 'QUEUED'::text NOT NULL,
    trigger jsonb NOT NULL,
    output jsonb,
    response jsonb,
    error text,
    parent_run_id uuid,
    parent_step_key text,
    resume_secret bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    deadline_at timestamp with time zone,
    timeout_remaining_seconds double precision,
    paused_at timestamp with time zone,
    pause_expires_at timestamp with time zone,
    job_max_attempts integer DEFAULT 5 NOT NULL,
    depth integer DEFAULT 0 NOT NULL,
    traceparent text,
    replay_of uuid,
    retry_batch uuid,
    handles_run uuid,
    CONSTRAINT flow_runs_depth_check CHECK ((depth >= 0)),
    CONSTRAINT flow_runs_final_has_finish CHECK ((public.sluice_run_is_final(status) = (finished_at IS NOT NULL))),
    CONSTRAINT flow_runs_job_max_attempts_check CHECK ((job_max_attempts >= 1)),
    CONSTRAINT flow_runs_resume_secret_check CHECK ((length(resume_secret) >= 32)),
    CONSTRAINT flow_runs_status_check CHECK ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'PAUSED'::text, 'SUCCEEDED'::text, 'FAILED'::text, 'TIMEOUT'::text, 'CANCELED'::text, 'MEMORY_LIMIT_EXCEEDED'::text, 'LOG_SIZE_EXCEEDED'::text, 'INTERNAL_ERROR'::text]))),
    CONSTRAINT flow_runs_traceparent_check CHECK ((length(traceparent) <= 512))
);

CREATE TABLE public.flow_versions (
    id bigint NOT NULL,
    flow_id uuid NOT NULL,
    version integer NOT NULL,
    definition jsonb NOT NULL,
    content_hash text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by text,
    CONSTRAINT flow_versions_version_check CHECK ((version >= 1))
);

ALTER TABLE public.flow_versions ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.flow_versions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.flows (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    project_id bigint NOT NULL,
    name text NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    live_version integer,
    CONSTRAINT flows_live_version_check CHECK ((live_version >= 1))
);

ALTER TABLE public.jobs ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.projects (
    id bigint NOT NULL,
    name text NOT NULL,
    concurrency_limit integer,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    allow_network boolean DEFAULT true NOT NULL,
    on_failure_flow text,
    CONSTRAINT projects_concurrency_limit_check CHECK ((concurrency_limit >= 1)),
    CONSTRAINT projects_name_check CHECK ((name <> ''::text)),
    CONSTRAINT projects_on_failure_flow_check CHECK ((on_failure_flow <> ''::text))
);

ALTER TABLE public.projects ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.projects_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.run_attempts (
    run_id uuid NOT NULL,
    attempt integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT run_attempts_attempt_check CHECK ((attempt >= 1))
);

CREATE TABLE public.run_keys (
    flow_id uuid NOT NULL,
    key text NOT NULL,
    run_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT run_keys_key_check CHECK ((key <> ''::text))
);

CREATE TABLE public.schedule_ticks (
    flow_id uuid NOT NULL,
    rule text NOT NULL,
    tick_at timestamp with time zone NOT NULL,
    run_id uuid,
    outcome text NOT NULL,
    fired_at timestamp with time zone NOT NULL,
    CONSTRAINT schedule_ticks_outcome_check CHECK ((outcome = ANY (ARRAY['run'::text, 'overlap'::text, 'cap'::text]))),
    CONSTRAINT schedule_ticks_rule_check CHECK ((rule <> ''::text))
);

CREATE TABLE public.secrets (
    project_id bigint NOT NULL,
    name text NOT NULL,
    key_id text NOT NULL,
    ciphertext bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT secrets_name_check CHECK ((name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'::text))
);

CREATE VIEW public.sluice_live_flows AS
 SELECT f.id AS flow_id,
    f.project_id,
    f.name,
    f.enabled,
    v.id AS version_id,
    v.version,
    w.webhook,
    ((w.webhook IS NOT NULL) AND (COALESCE((w.webhook ->> 'verify'::text),
        CASE
            WHEN ((w.webhook ->> 'secret'::text) IS NULL) THEN 'none'::text
            ELSE 'hmac-sha256'::text
        END) = 'none'::text)) AS open
   FROM ((public.flows f
     JOIN LATERAL ( SELECT flow_versions.id,
            flow_versions.version,
            flow_versions.definition
           FROM public.flow_versions
          WHERE ((flow_versions.flow_id = f.id) AND ((f.live_version IS NULL) OR (flow_versions.version = f.live_version)))
          ORDER BY flow_versions.version DESC
         LIMIT 1) v ON (true))
     CROSS JOIN LATERAL ( SELECT
                CASE jsonb_typeof((v.definition -> 'trigger'::text))
                    WHEN 'array'::text THEN ( SELECT t.value AS t
                       FROM jsonb_array_elements((v.definition -> 'trigger'::text)) t(value)
                      WHERE ((t.value ->> 'type'::text) = 'webhook'::text)
                     LIMIT 1)
                    WHEN 'object'::text THEN
                    CASE
                        WHEN (COALESCE(((v.definition -> 'trigger'::text) ->> 'type'::text), 'webhook'::text) = 'webhook'::text) THEN (v.definition -> 'trigger'::text)
                        ELSE NULL::jsonb
                    END
                    ELSE '{}'::jsonb
                END AS webhook) w)
  WHERE (f.deleted_at IS NULL);

CREATE TABLE public.step_runs (
    id bigint NOT NULL,
    run_id uuid NOT NULL,
    key text NOT NULL,
    step_id text NOT NULL,
    type text NOT NULL,
    status text NOT NULL,
    attempts integer DEFAULT 1 NOT NULL,
    output jsonb,
    error text,
    stdout text,
    stderr text,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    CONSTRAINT step_runs_status_check CHECK ((status = ANY (ARRAY['SUCCEEDED'::text, 'FAILED'::text, 'PAUSED'::text, 'RETRYING'::text, 'TIMEOUT'::text, 'CANCELED'::text, 'MEMORY_LIMIT_EXCEEDED'::text, 'LOG_SIZE_EXCEEDED'::text, 'INTERNAL_ERROR'::text])))
);

ALTER TABLE public.step_runs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.step_runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.vars (
    project_id bigint NOT NULL,
    name text NOT NULL,
    value text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT vars_name_check CHECK ((name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'::text))
);

CREATE TABLE public.waitpoints (
    run_id uuid NOT NULL,
    step_key text NOT NULL,
    kind text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    resume_at timestamp with time zone,
    child_run_id uuid,
    payload jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    CONSTRAINT waitpoints_kind_check CHECK ((kind = ANY (ARRAY['delay'::text, 'webhook'::text, 'subflow'::text]))),
    CONSTRAINT waitpoints_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'completed'::text])))
);

CREATE TABLE public.workers (
    id text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    container_type text NOT NULL,
    slots integer NOT NULL,
    version text NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen timestamp with time zone DEFAULT now() NOT NULL,
    stopped_at timestamp with time zone,
    CONSTRAINT workers_slots_check CHECK ((slots >= 1))
);

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_prefix_key UNIQUE (prefix);

ALTER TABLE ONLY public.dead_jobs
    ADD CONSTRAINT dead_jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.flow_runs
    ADD CONSTRAINT flow_runs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.flow_versions
    ADD CONSTRAINT flow_versions_flow_id_version_key UNIQUE (flow_id, version);

ALTER TABLE ONLY public.flow_versions
    ADD CONSTRAINT flow_versions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.flows
    ADD CONSTRAINT flows_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_name_key UNIQUE (name);

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.run_attempts
    ADD CONSTRAINT run_attempts_pkey PRIMARY KEY (run_id, attempt);

ALTER TABLE ONLY public.run_keys
    ADD CONSTRAINT run_keys_pkey PRIMARY KEY (flow_id, key);

ALTER TABLE ONLY public.schedule_ticks
    ADD CONSTRAINT schedule_ticks_pkey PRIMARY KEY (flow_id, rule, tick_at);

ALTER TABLE ONLY public.secrets
    ADD CONSTRAINT secrets_pkey PRIMARY KEY (project_id, name);

ALTER TABLE ONLY public.step_runs
    ADD CONSTRAINT step_runs_pkey PRIMARY KEY (run_id, key);

ALTER TABLE ONLY public.vars
    ADD CONSTRAINT vars_pkey PRIMARY KEY (project_id, name);

ALTER TABLE ONLY public.waitpoints
    ADD CONSTRAINT waitpoints_pkey PRIMARY KEY (run_id, step_key);

ALTER TABLE ONLY public.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);

CREATE INDEX api_keys_project ON public.api_keys USING btree (project_id);

CREATE INDEX dead_jobs_died_at ON public.dead_jobs USING btree (died_at);

CREATE INDEX flow_runs_by_flow ON public.flow_runs USING btree (flow_id, created_at DESC, id DESC);

CREATE INDEX flow_runs_children ON public.flow_runs USING btree (parent_run_id) WHERE (parent_run_id IS NOT NULL);

CREATE INDEX flow_runs_deadline ON public.flow_runs USING btree (deadline_at) WHERE (status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text]));

CREATE INDEX flow_runs_handles_run ON public.flow_runs USING btree (handles_run) WHERE (handles_run IS NOT NULL);

CREATE INDEX flow_runs_listing ON public.flow_runs USING btree (project_id, created_at DESC, id DESC);

CREATE INDEX flow_runs_live ON public.flow_runs USING btree (status) WHERE (status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'PAUSED'::text]));

CREATE INDEX flow_runs_live_by_project ON public.flow_runs USING btree (project_id) WHERE (status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'PAUSED'::text]));

CREATE INDEX flow_runs_pause_expiry ON public.flow_runs USING btree (pause_expires_at) WHERE (status = 'PAUSED'::text);

CREATE INDEX flow_runs_replay_of ON public.flow_runs USING btree (replay_of) WHERE (replay_of IS NOT NULL);

CREATE UNIQUE INDEX flows_live_name ON public.flows USING btree (project_id, name) WHERE (deleted_at IS NULL);

CREATE INDEX jobs_claim_order ON public.jobs USING btree (priority, run_at, id) WHERE (state = 'queued'::public.job_state);

CREATE UNIQUE INDEX jobs_idempotency_key ON public.jobs USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL);

CREATE INDEX jobs_lease_expiry ON public.jobs USING btree (lease_expires_at) WHERE (state = 'running'::public.job_state);

CREATE INDEX jobs_running_by_project ON public.jobs USING btree (project_id) WHERE (state = 'running'::public.job_state);

CREATE INDEX run_keys_created_at ON public.run_keys USING btree (created_at);

CREATE INDEX run_keys_run ON public.run_keys USING btree (run_id);

CREATE INDEX schedule_ticks_run ON public.schedule_ticks USING btree (run_id) WHERE (run_id IS NOT NULL);

CREATE INDEX secrets_by_key ON public.secrets USING btree (key_id);

CREATE INDEX waitpoints_child ON public.waitpoints USING btree (child_run_id) WHERE (child_run_id IS NOT NULL);

CREATE INDEX workers_last_seen ON public.workers USING btree (last_seen);

CREATE TRIGGER dead_jobs_fail_run AFTER INSERT ON public.dead_jobs FOR EACH ROW EXECUTE FUNCTION public.sluice_run_job_died();

CREATE TRIGGER flow_runs_attempts AFTER UPDATE OF status ON public.flow_runs FOR EACH ROW WHEN ((old.status IS DISTINCT FROM new.status)) EXECUTE FUNCTION public.sluice_run_attempt();

CREATE TRIGGER flow_runs_created AFTER INSERT ON public.flow_runs FOR EACH ROW EXECUTE FUNCTION public.sluice_run_created();

CREATE TRIGGER flow_runs_failure_handler AFTER UPDATE OF status ON public.flow_runs FOR EACH ROW WHEN (((new.status = ANY (ARRAY['FAILED'::text, 'TIMEOUT'::text, 'INTERNAL_ERROR'::text])) AND (NOT public.sluice_run_is_final(old.status)))) EXECUTE FUNCTION public.sluice_start_failure_handler();

CREATE TRIGGER flow_runs_finished AFTER UPDATE OF status ON public.flow_runs FOR EACH ROW WHEN ((public.sluice_run_is_final(new.status) AND (NOT public.sluice_run_is_final(old.status)))) EXECUTE FUNCTION public.sluice_run_finished();

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.dead_jobs
    ADD CONSTRAINT dead_jobs_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.flow_runs
    ADD CONSTRAINT flow_runs_flow_id_fkey FOREIGN KEY (flow_id) REFERENCES public.flows(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.flow_runs
    ADD CONSTRAINT flow_runs_flow_version_id_fkey FOREIGN KEY (flow_version_id) REFERENCES public.flow_versions(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.flow_runs
    ADD CONSTRAINT flow_runs_handles_run_fkey FOREIGN KEY (handles_run) REFERENCES public.flow_runs(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.flow_runs
    ADD CONSTRAINT flow_runs_parent_run_id_fkey FOREIGN KEY (parent_run_id) REFERENCES public.flow_runs(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.flow_runs
    ADD CONSTRAINT flow_runs_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.flow_runs
    ADD CONSTRAINT flow_runs_replay_of_fkey FOREIGN KEY (replay_of) REFERENCES public.flow_runs(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.flow_versions
    ADD CONSTRAINT flow_versions_flow_id_fkey FOREIGN KEY (flow_id) REFERENCES public.flows(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.flows
    ADD CONSTRAINT flows_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.run_attempts
    ADD CONSTRAINT run_attempts_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.flow_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.run_keys
    ADD CONSTRAINT run_keys_flow_id_fkey FOREIGN KEY (flow_id) REFERENCES public.flows(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.run_keys
    ADD CONSTRAINT run_keys_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.flow_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.schedule_ticks
    ADD CONSTRAINT schedule_ticks_flow_id_fkey FOREIGN KEY (flow_id) REFERENCES public.flows(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.schedule_ticks
    ADD CONSTRAINT schedule_ticks_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.flow_runs(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.secrets
    ADD CONSTRAINT secrets_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.step_runs
    ADD CONSTRAINT step_runs_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.flow_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.vars
    ADD CONSTRAINT vars_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.waitpoints
    ADD CONSTRAINT waitpoints_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.flow_runs(id) ON DELETE CASCADE;
