-- The PostGraphile peer's computed columns: what a PostGraphile user adds in SQL where the
-- generated schema has no field for an answer. PostGraphile exposes a STABLE function named
-- <table>_<name> whose first argument is the table's row as a field of that table's type
-- (models_default_version -> Model.defaultVersion). PostGraphile v4 wants them in the table's
-- schema, so they go in public, in the database bench/run.py creates for its run (dropped
-- afterwards); ModelQL's tables are not changed.

-- ModelQL's Model.defaultVersion: the version aliased "production", else the newest one.
CREATE OR REPLACE FUNCTION public.models_default_version(m public.models)
RETURNS public.model_versions LANGUAGE sql STABLE AS $$
    SELECT v.*
    FROM public.model_versions AS v
    LEFT JOIN public.model_aliases AS a
           ON a.version_id = v.id AND a.model_id = m.id AND a.alias = 'production'
    WHERE v.model_id = m.id
    ORDER BY a.id IS NULL, v.number DESC
    LIMIT 1
$$;

-- ModelQL's metric(name: "accuracy", split: LIVE): labelled predictions whose label is the
-- outcome's, over all labelled predictions, from the outcome roll-ups; null without any.
CREATE OR REPLACE FUNCTION public.model_versions_live_accuracy(v public.model_versions)
RETURNS double precision LANGUAGE sql STABLE AS $$
    SELECT (sum(count) FILTER (WHERE predicted = observed AND predicted <> ''))::float8
           / nullif(sum(count), 0)::float8
    FROM public.outcome_rollups
    WHERE model_version_id = v.id
$$;

-- ModelQL's inputDrift { features { feature score drifted } }: the version's 10,000 most
-- recent predictions binned like its reference profile (numeric features by width_bucket over
-- the profile's edges, categorical ones by value, plus "(other)" and "(missing)" bins when
-- either side has any), and the population stability index of each feature against the
-- profile, both sides smoothed by half a count per bin; no score under 30 predictions, drifted
-- above 0.2 (ModelQL's defaults). Features without a profile have no score.
CREATE OR REPLACE FUNCTION public.model_versions_input_drift(v public.model_versions)
RETURNS TABLE (feature text, score double precision, drifted boolean)
LANGUAGE sql STABLE AS $$
    WITH signature AS (
        SELECT spec ->> 'name' AS name, position
        FROM jsonb_array_elements(v.input_schema) WITH ORDINALITY AS s(spec, position)
    ),
    profiled AS (
        SELECT s.position, s.name, f ->> 'kind' AS kind, f -> 'shares' AS shares,
               f -> 'categories' AS categories, (f ->> 'missing')::float8 AS missing,
               ARRAY(SELECT jsonb_array_elements_text(f -> 'edges')::float8) AS edges,
               (r.profile ->> 'sample_size')::float8 AS size
        FROM public.reference_profiles AS r
        CROSS JOIN LATERAL jsonb_array_elements(r.profile -> 'features') AS f
        JOIN signature AS s ON s.name = f ->> 'name'
        WHERE r.version_id = v.id
    ),
    sample AS (
        SELECT p.inputs
        FROM public.predictions AS p
        WHERE p.model_version_id = v.id
        ORDER BY p.created_at DESC
        LIMIT 10000
    ),
    live AS (
        SELECT f.position,
               CASE WHEN f.kind = 'numeric'
                    THEN CASE WHEN jsonb_typeof(s.inputs -> f.name) = 'number'
                              THEN width_bucket((s.inputs ->> f.name)::float8, f.edges)::text
                         END
                    ELSE s.inputs ->> f.name END AS bin,
               count(*)::float8 AS n
        FROM profiled AS f CROSS JOIN sample AS s
        GROUP BY 1, 2
    ),
    reference AS (
        SELECT f.position, b.bin, b.share
        FROM profiled AS f
        CROSS JOIN LATERAL (
            SELECT (ordinality - 1)::text AS bin, value::float8 AS share
            FROM jsonb_array_elements_text(f.shares) WITH ORDINALITY
            WHERE f.kind = 'numeric'
            UNION ALL
            SELECT key, value::float8 FROM jsonb_each_text(f.categories)
            WHERE f.kind <> 'numeric'
        ) AS b
    ),
    bins AS (
        SELECT r.position, r.share, coalesce(l.n, 0) AS n
        FROM reference AS r
        LEFT JOIN live AS l ON l.position = r.position AND l.bin = r.bin
        UNION ALL
        SELECT f.position, 0, sum(l.n)
        FROM profiled AS f JOIN live AS l ON l.position = f.position
        WHERE f.kind <> 'numeric' AND l.bin IS NOT NULL AND NOT f.categories ? l.bin
        GROUP BY f.position
        UNION ALL
        SELECT f.position, f.missing, coalesce(sum(l.n) FILTER (WHERE l.bin IS NULL), 0)
        FROM profiled AS f LEFT JOIN live AS l ON l.position = f.position
        GROUP BY f.position, f.missing
        HAVING f.missing > 0 OR count(*) FILTER (WHERE l.bin IS NULL) > 0
    ),
    smoothed AS (
        SELECT b.position,
               (b.n + 0.5) / (sum(b.n) OVER w + 0.5 * count(*) OVER w) AS observed,
               (b.share * f.size + 0.5) / (f.size + 0.5 * count(*) OVER w) AS expected,
               sum(b.n) OVER w AS total
        FROM bins AS b JOIN profiled AS f USING (position)
        WINDOW w AS (PARTITION BY b.position)
    ),
    scored AS (
        SELECT position,
               CASE WHEN max(total) >= 30
                    THEN sum((observed - expected) * ln(observed / expected)) END AS score
        FROM smoothed
        GROUP BY position
    )
    SELECT s.name, scored.score, scored.score > 0.2
    FROM signature AS s
    LEFT JOIN scored USING (position)
    ORDER BY s.position
$$;
