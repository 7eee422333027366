-- Admission and release of call slots in one round trip each.
--
-- voicegate_admit serialises the admissions of one tenant across every node with a
-- transaction-scoped advisory lock, then counts live leases and this month's usage and
-- inserts a lease only when every limit allows it. Each statement of a VOLATILE PL/pgSQL
-- function takes a fresh snapshot, so the counts taken after the lock see every lease that
-- the previous lock holder committed. The lock is released when the calling statement's
-- transaction commits, after its lease is visible.

-- Checks the tenant's status and limits; outcome is NULL when a call may be admitted, and
-- active is the number of live leases.
CREATE FUNCTION voicegate_admission_check(
    p_tenant BIGINT,
    p_month_start DATE,
    p_month_end DATE,
    OUT outcome TEXT,
    OUT active BIGINT
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_tenant tenants%ROWTYPE;
    v_calls BIGINT;
    v_minutes BIGINT;
BEGIN
    active := 0;
    SELECT * INTO v_tenant FROM tenants WHERE id = p_tenant;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    IF v_tenant.status <> 'active' THEN
        outcome := 'suspended';
        RETURN;
    END IF;

    SELECT coalesce(sum(calls), 0), coalesce(sum(minutes), 0) INTO v_calls, v_minutes
    FROM usage_daily
    WHERE tenant_id = p_tenant AND day >= p_month_start AND day < p_month_end;
    IF v_tenant.monthly_call_limit > 0 AND v_calls >= v_tenant.monthly_call_limit THEN
        outcome := 'monthly_calls';
        RETURN;
    END IF;
    IF v_tenant.monthly_minute_limit > 0 AND v_minutes >= v_tenant.monthly_minute_limit THEN
        outcome := 'monthly_minutes';
        RETURN;
    END IF;

    SELECT count(*) INTO active
    FROM call_leases
    WHERE tenant_id = p_tenant AND expires_at > clock_timestamp();
    IF v_tenant.max_concurrent_calls > 0 AND active >= v_tenant.max_concurrent_calls THEN
        outcome := 'concurrency';
    END IF;
END
$$;

CREATE FUNCTION voicegate_admit(
    p_tenant BIGINT,
    p_call_id TEXT,
    p_node TEXT,
    p_run TEXT,
    p_lease_secs BIGINT,
    p_day DATE,
    p_month_start DATE,
    p_month_end DATE
) RETURNS TABLE (outcome TEXT, lease_id BIGINT, active BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_check RECORD;
    v_lease BIGINT;
    v_now TIMESTAMPTZ;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::TEXT, true);

    -- A rejection needs no lock: a limit reached in a committed snapshot was reached at that
    -- moment, and rejecting never admits too many. Only calls that may pass wait for the lock.
    v_check := voicegate_admission_check(p_tenant, p_month_start, p_month_end);
    IF v_check.outcome IS NOT NULL THEN
        RETURN QUERY SELECT v_check.outcome, NULL::BIGINT, v_check.active;
        RETURN;
    END IF;

    -- 1986488929 ('vg' call slots) keeps these locks apart from other users of the database;
    -- the second key is the tenant id (a collision only serialises two tenants together).
    PERFORM pg_advisory_xact_lock(1986488929, (p_tenant & 2147483647)::INTEGER);
    v_check := voicegate_admission_check(p_tenant, p_month_start, p_month_end);
    IF v_check.outcome IS NOT NULL THEN
        RETURN QUERY SELECT v_check.outcome, NULL::BIGINT, v_check.active;
        RETURN;
    END IF;

    v_now := clock_timestamp();
    INSERT INTO call_leases (tenant_id, call_id, node_id, run_id, created_at, expires_at)
    VALUES (p_tenant, p_call_id, p_node, p_run, v_now, v_now + make_interval(secs => p_lease_secs))
    RETURNING id INTO v_lease;

    INSERT INTO usage_daily (tenant_id, day, calls, concurrent_peak)
    VALUES (p_tenant, p_day, 1, v_check.active + 1)
    ON CONFLICT (tenant_id, day) DO UPDATE
    SET calls = usage_daily.calls + 1,
        concurrent_peak = greatest(usage_daily.concurrent_peak, excluded.concurrent_peak);

    RETURN QUERY SELECT 'admitted'::TEXT, v_lease, v_check.active + 1;
END
$$;

CREATE FUNCTION voicegate_release(p_tenant BIGINT, p_lease BIGINT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_deleted BIGINT;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::TEXT, true);
    DELETE FROM call_leases WHERE id = p_lease AND tenant_id = p_tenant;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;

-- Routing in one round trip: the tenant that owns p_number, else the tenant named p_default
-- (when not empty). Runs with the admin scope because the tenant is not known yet.
CREATE FUNCTION voicegate_route(p_number TEXT, p_default TEXT) RETURNS SETOF tenants
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('app.admin', 'on', true);
    RETURN QUERY
        SELECT t.* FROM phone_numbers p JOIN tenants t ON t.id = p.tenant_id
        WHERE p.number = p_number;
    IF NOT FOUND AND p_default <> '' THEN
        RETURN QUERY SELECT t.* FROM tenants t WHERE t.name = p_default;
    END IF;
END
$$;
