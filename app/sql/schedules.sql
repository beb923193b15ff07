-- name: scheduled_flows
-- A page (by flow id) of live flows with schedule triggers in their latest version: each
-- schedule with its position among the flow's triggers. enabled_only: what the leader fires.
SELECT f.flow_id, f.project_id, f.name, f.enabled, f.version_id, f.version, v.created_at,
       s.schedules
FROM sluice_live_flows f
JOIN flow_versions v ON v.id = f.version_id
CROSS JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('position', t.position - 1, 'trigger', t.value)
                     ORDER BY t.position) AS schedules
    FROM jsonb_array_elements(CASE jsonb_typeof(v.definition -> 'trigger')
                                  WHEN 'array' THEN v.definition -> 'trigger'
                                  ELSE jsonb_build_array(v.definition -> 'trigger')
                              END) WITH ORDINALITY AS t (value, position)
    WHERE t.value ->> 'type' = 'schedule'
) s
WHERE s.schedules IS NOT NULL
  AND (f.enabled OR NOT %(enabled_only)s)
  AND (%(project_id)s::bigint IS NULL OR f.project_id = %(project_id)s)
  AND f.flow_id > coalesce(%(after)s::uuid, '00000000-0000-0000-0000-000000000000')
ORDER BY f.flow_id
LIMIT %(limit)s;

-- name: last_ticks
-- Each schedule's latest tick (where the next pass goes on from) and latest tick that
-- started a run.
SELECT k.flow_id, k.rule,
       (SELECT max(t.tick_at) FROM schedule_ticks t
        WHERE t.flow_id = k.flow_id AND t.rule = k.rule) AS last_tick_at,
       (SELECT t.tick_at FROM schedule_ticks t
        WHERE t.flow_id = k.flow_id AND t.rule = k.rule AND t.run_id IS NOT NULL
        ORDER BY t.tick_at DESC LIMIT 1) AS last_run_at
FROM unnest(%(flow_ids)s::uuid[], %(rules)s::text[]) AS k (flow_id, rule);

-- name: fire_ticks
-- Fire due ticks, each once: a tick is inserted with its run (and, by flow_runs_created, its
-- job) in this one statement, and a tick inserted before, by any pass, starts nothing. A
-- tick of a schedule with a live run (overlap skip: also a second tick of it in this call)
-- or of a project at max_live live runs is recorded without a run. Rows: the ticks inserted.
WITH clock AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
),
wanted AS (
    SELECT w.*, f.project_id,
           row_number() OVER (PARTITION BY w.flow_id, w.rule ORDER BY w.tick_at) AS nth
    FROM unnest(%(flow_ids)s::uuid[], %(rules)s::text[], %(ticks)s::timestamptz[],
                %(run_ids)s::uuid[], %(triggers)s::jsonb[], %(overlaps)s::text[],
                %(version_ids)s::bigint[], %(versions)s::int[], %(resume_secrets)s::bytea[])
         AS w (flow_id, rule, tick_at, run_id, trigger, overlap, version_id, version,
               resume_secret)
    JOIN flows f ON f.id = w.flow_id AND f.enabled AND f.deleted_at IS NULL
),
overlapping AS (
    SELECT w.*, w.overlap = 'skip' AND (w.nth > 1 OR EXISTS (
               SELECT FROM flow_runs r JOIN schedule_ticks t ON t.run_id = r.id
               WHERE r.flow_id = w.flow_id AND r.status IN ('QUEUED', 'RUNNING', 'PAUSED')
                 AND t.flow_id = w.flow_id AND t.rule = w.rule
           )) AS overlaps
    FROM wanted w
),
judged AS (
    SELECT o.*, CASE
               WHEN o.overlaps THEN 'overlap'
               WHEN (SELECT count(*) FROM (
                        SELECT FROM flow_runs live
                        WHERE live.project_id = o.project_id
                          AND live.status IN ('QUEUED', 'RUNNING', 'PAUSED')
                        LIMIT %(max_live)s
                    ) AS counted)
                    + row_number() OVER (PARTITION BY o.project_id, o.overlaps
                                         ORDER BY o.tick_at, o.flow_id, o.rule)
                    > %(max_live)s THEN 'cap'
               ELSE 'run'
           END AS outcome
    FROM overlapping o
),
ticks AS (
    INSERT INTO schedule_ticks (flow_id, rule, tick_at, run_id, outcome, fired_at)
    SELECT j.flow_id, j.rule, j.tick_at, CASE WHEN j.outcome = 'run' THEN j.run_id END,
           j.outcome, clock.now
    FROM judged j, clock
    ON CONFLICT (flow_id, rule, tick_at) DO NOTHING
    RETURNING flow_id, rule, tick_at, run_id, outcome
),
runs AS (
    INSERT INTO flow_runs (
        id, project_id, flow_id, flow_version_id, version, trigger, resume_secret,
        deadline_at, job_max_attempts, created_at
    )
    SELECT t.run_id, j.project_id, j.flow_id, j.version_id, j.version, j.trigger,
           j.resume_secret, clock.now + make_interval(secs => %(timeout_seconds)s),
           %(max_attempts)s, clock.now
    FROM ticks t
    JOIN judged j USING (flow_id, rule, tick_at)
    CROSS JOIN clock
    WHERE t.run_id IS NOT NULL
)
SELECT t.flow_id, t.rule, t.tick_at, t.run_id, t.outcome, j.project_id
FROM ticks t
JOIN judged j USING (flow_id, rule, tick_at)
ORDER BY t.tick_at, t.flow_id, t.rule;

-- name: forget_ticks
-- Maintenance: ticks older than the window, except each schedule's latest (its next pass
-- goes on from there, so no older tick is due again) and those of live runs (overlap).
DELETE FROM schedule_ticks
WHERE ctid IN (
    SELECT t.ctid FROM schedule_ticks t
    WHERE t.tick_at < coalesce(%(now)s::timestamptz, now()) - make_interval(secs => %(window)s)
      AND EXISTS (SELECT FROM schedule_ticks later
                  WHERE later.flow_id = t.flow_id AND later.rule = t.rule
                    AND later.tick_at > t.tick_at)
      AND NOT EXISTS (SELECT FROM flow_runs r
                      WHERE r.id = t.run_id AND r.status IN ('QUEUED', 'RUNNING', 'PAUSED'))
    LIMIT %(limit)s
);

-- name: clock
-- The database's time: a pass without an injected clock computes its ticks by it.
SELECT clock_timestamp();
