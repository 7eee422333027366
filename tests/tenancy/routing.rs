//! Routing by dialled number: the number formats and headers trunks use, and provisioning
//! conflicts between tenants.

use voicegate::sip::TrunkConfig;
use voicegate::tenancy::{
    NumberSource, NumberSources, RejectReason, Store, TenancyConfig, TenancyError, resolve_dialled,
};

use super::common::{Backend, TestDb, both_backends, tenant};

const TENANT_A: &str = "+12025550100";
const TENANT_B: &str = "+12025550111";

/// The headers of a fixture INVITE that may carry the dialled number.
struct Invite {
    request_uri: String,
    to: String,
    p_called_party_id: Option<String>,
    diversion: Vec<String>,
}

fn invite(name: &str) -> Invite {
    let path = format!(
        "{}/tests/tenancy/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    let mut lines = text.split("\r\n");
    let request_line = lines.next().expect("request line");
    let request_uri = request_line
        .split(' ')
        .nth(1)
        .expect("request line has a URI")
        .to_string();
    let mut invite = Invite {
        request_uri,
        to: String::new(),
        p_called_party_id: None,
        diversion: Vec::new(),
    };
    for line in lines.take_while(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').expect("header line");
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "to" | "t" => invite.to = value,
            "p-called-party-id" => invite.p_called_party_id = Some(value),
            "diversion" => invite.diversion.push(value),
            _ => {}
        }
    }
    invite
}

fn resolve(invite: &Invite, trunk: &TrunkConfig) -> voicegate::tenancy::Dialled {
    let sources = NumberSources {
        request_uri: &invite.request_uri,
        to: &invite.to,
        p_called_party_id: invite.p_called_party_id.as_deref(),
        diversion: &invite.diversion,
    };
    resolve_dialled(
        &sources,
        &trunk.number_from,
        trunk.trusted,
        &trunk.default_country,
    )
}

async fn two_tenants(store: &Store) {
    tenant(store, "tenant-a", 0).await;
    tenant(store, "tenant-b", 0).await;
    store
        .add_number("tenant-a", TENANT_A, "")
        .await
        .expect("number A");
    store
        .add_number("tenant-b", TENANT_B, "")
        .await
        .expect("number B");
}

async fn routed_name(store: &Store, number: Option<&str>) -> Option<String> {
    store
        .route(number)
        .await
        .expect("route query")
        .map(|tenant| tenant.name)
}

async fn fixtures_route_to_tenants(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    two_tenants(&store).await;
    let trunk = TrunkConfig::default();

    let forwarded = resolve(&invite("invite-pcpid-diversion.sip"), &trunk);
    assert_eq!(forwarded.number.as_deref(), Some(TENANT_A));
    assert_eq!(forwarded.source, Some(NumberSource::PCalledPartyId));
    assert_eq!(forwarded.forwarded_from(), Some("+12025550199"));
    let name = routed_name(&store, forwarded.number.as_deref()).await;
    assert_eq!(name.as_deref(), Some("tenant-a"));

    let registration = resolve(&invite("invite-registration-contact.sip"), &trunk);
    assert_eq!(registration.number.as_deref(), Some(TENANT_B));
    assert_eq!(registration.source, Some(NumberSource::To));
    let name = routed_name(&store, registration.number.as_deref()).await;
    assert_eq!(name.as_deref(), Some("tenant-b"));

    let ported = resolve(&invite("invite-number-portability.sip"), &trunk);
    assert_eq!(ported.number.as_deref(), Some(TENANT_A));
    assert_eq!(ported.source, Some(NumberSource::RequestUri));
    let name = routed_name(&store, ported.number.as_deref()).await;
    assert_eq!(name.as_deref(), Some("tenant-a"));
}
both_backends!(fixtures_route, fixtures_route_to_tenants);

async fn untrusted_trunk_uses_request_uri(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    two_tenants(&store).await;
    let trunk = TrunkConfig {
        trusted: false,
        ..TrunkConfig::default()
    };
    let mut forged = invite("invite-pcpid-diversion.sip");
    forged.p_called_party_id = Some(format!("<sip:{TENANT_B}@carrier.example.com>"));
    let dialled = resolve(&forged, &trunk);
    assert_eq!(dialled.source, Some(NumberSource::RequestUri));
    let name = routed_name(&store, dialled.number.as_deref()).await;
    assert_eq!(name.as_deref(), Some("tenant-a"));
}
both_backends!(untrusted_pcpid, untrusted_trunk_uses_request_uri);

async fn every_form_reaches_tenant_a(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    two_tenants(&store).await;
    let trunk = TrunkConfig::default();
    let forms = [
        "sip:12025550100@media.example.net;user=phone",
        "sip:2025550100@media.example.net",
        "sip:0012025550100@media.example.net",
        "sip:%2B12025550100@media.example.net",
        "sip:+12025550100;npdi;rn=+12025559000@media.example.net;user=phone",
        "tel:+1-202-555-0100",
        "tel:+1 (202) 555-0100",
    ];
    for form in forms {
        let sources = NumberSources {
            request_uri: form,
            to: "<sip:unrelated@media.example.net>",
            p_called_party_id: None,
            diversion: &[],
        };
        let dialled = resolve_dialled(
            &sources,
            &trunk.number_from,
            trunk.trusted,
            &trunk.default_country,
        );
        let name = routed_name(&store, dialled.number.as_deref()).await;
        assert_eq!(name.as_deref(), Some("tenant-a"), "{form}");
    }
}
both_backends!(number_forms, every_form_reaches_tenant_a);

async fn unknown_number_is_not_found(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    two_tenants(&store).await;
    assert_eq!(routed_name(&store, Some("+12025550177")).await, None);
    assert_eq!(routed_name(&store, None).await, None);
    let rejection = store
        .route_and_admit(Some("+12025550177"), "unknown-number")
        .await
        .expect_err("no tenant owns the number");
    assert_eq!(rejection.status, 404);
    assert_eq!(rejection.reason, RejectReason::NoRoute);
}
both_backends!(unknown_number, unknown_number_is_not_found);

async fn default_tenant_takes_unknown_numbers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let tenancy = TenancyConfig {
        default_tenant: "fallback".into(),
        ..TenancyConfig::default()
    };
    let store = db.store(&tenancy, "node-a").await;
    two_tenants(&store).await;
    // migrate() created the default tenant.
    assert!(store.tenant_by_name("fallback").await.unwrap().is_some());
    assert_eq!(
        routed_name(&store, Some("+12025550177")).await.as_deref(),
        Some("fallback")
    );
    assert_eq!(routed_name(&store, None).await.as_deref(), Some("fallback"));
    assert_eq!(
        routed_name(&store, Some(TENANT_B)).await.as_deref(),
        Some("tenant-b")
    );
    // Running the migrations again keeps the one default tenant.
    store.migrate().await.expect("migrations are idempotent");
    let names: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["fallback", "tenant-a", "tenant-b"]);
}
both_backends!(default_tenant, default_tenant_takes_unknown_numbers);

async fn provisioning_rejects_shared_numbers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    two_tenants(&store).await;
    for form in [
        "2025550100",
        "+1 (202) 555-0100",
        "tel:+1-202-555-0100",
        "0012025550100",
    ] {
        let err = store
            .add_number("tenant-b", form, "1")
            .await
            .expect_err("number of tenant A");
        assert!(matches!(err, TenancyError::Conflict(_)), "{form}: {err}");
        assert!(err.to_string().contains(TENANT_A), "{err}");
    }
    let again = store
        .add_number("tenant-a", "tel:+1-202-555-0100", "")
        .await
        .expect("the owner may add its own number again");
    assert_eq!(again.number, TENANT_A);
    let numbers = store.list_numbers(None).await.unwrap();
    assert_eq!(numbers.len(), 2);

    let err = store
        .add_number("tenant-a", "front-desk", "1")
        .await
        .unwrap_err();
    assert!(matches!(err, TenancyError::Invalid { ref field, .. } if field == "number"));
    let err = store
        .add_number("nobody", "+12025550122", "")
        .await
        .unwrap_err();
    assert!(
        matches!(err, TenancyError::NotFound { kind: "tenant", .. }),
        "{err}"
    );
}
both_backends!(shared_numbers, provisioning_rejects_shared_numbers);

async fn removed_number_stops_routing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    two_tenants(&store).await;
    let err = store
        .remove_number(Some("tenant-b"), TENANT_A)
        .await
        .unwrap_err();
    assert!(matches!(err, TenancyError::NotFound { .. }), "{err}");
    store
        .remove_number(Some("tenant-a"), TENANT_A)
        .await
        .expect("owner removes");
    assert_eq!(routed_name(&store, Some(TENANT_A)).await, None);
    store
        .add_number("tenant-b", "2025550100", "1")
        .await
        .expect("number is free now");
    assert_eq!(
        routed_name(&store, Some(TENANT_A)).await.as_deref(),
        Some("tenant-b")
    );
}
both_backends!(removed_number, removed_number_stops_routing);
