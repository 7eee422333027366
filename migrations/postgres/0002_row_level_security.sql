-- Row-level security: every statement sees only the rows of the tenant named by the
-- transaction-local setting app.tenant_id, or all rows when app.admin is 'on' (admin API,
-- routing by number, key lookup, lease heartbeats). A query that forgets its tenant filter
-- therefore still returns no other tenant's rows. FORCE applies the policies to the table
-- owner as well; superusers and roles with BYPASSRLS are never subject to them, so voicegate
-- must connect as an ordinary role. A later migration that reads or changes rows must first run
-- SET LOCAL app.admin = 'on', or it sees no rows.

CREATE FUNCTION voicegate_visible(row_tenant BIGINT) RETURNS BOOLEAN
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT current_setting('app.admin', true) = 'on'
        OR row_tenant = nullif(current_setting('app.tenant_id', true), '')::BIGINT
$$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants USING (voicegate_visible(id));

ALTER TABLE phone_numbers ENABLE ROW LEVEL SECURITY;
ALTER TABLE phone_numbers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON phone_numbers USING (voicegate_visible(tenant_id));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys USING (voicegate_visible(tenant_id));

ALTER TABLE calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE calls FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON calls USING (voicegate_visible(tenant_id));

ALTER TABLE turns ENABLE ROW LEVEL SECURITY;
ALTER TABLE turns FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON turns USING (voicegate_visible(tenant_id));

ALTER TABLE usage_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_daily USING (voicegate_visible(tenant_id));

ALTER TABLE call_leases ENABLE ROW LEVEL SECURITY;
ALTER TABLE call_leases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON call_leases USING (voicegate_visible(tenant_id));
