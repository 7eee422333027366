//! Admission: exact limits under bursts, every rejection's SIP response, and slots that come
//! back to zero on every path a call can end by.

use chrono::{Duration, Utc};
use voicegate::tenancy::{
    CallRecord, CallSlot, RejectReason, Rejection, Store, TenancyConfig, TenantLimits, TenantPatch,
    TenantStatus,
};

use super::common::{Backend, TestDb, both_backends, no_default_tenant, tenant};

/// Starts `attempts` admissions for `tenant` at once and returns the slots that were granted
/// and the rejections.
async fn burst(
    store: &Store,
    tenant: &voicegate::tenancy::Tenant,
    attempts: usize,
    prefix: &str,
) -> (Vec<CallSlot>, Vec<Rejection>) {
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let store = store.clone();
            let tenant = tenant.clone();
            let call_id = format!("{prefix}-{i}");
            tokio::spawn(async move { store.admit(&tenant, &call_id).await })
        })
        .collect();
    let mut slots = Vec::new();
    let mut rejections = Vec::new();
    for task in tasks {
        match task.await.expect("admission task") {
            Ok(slot) => slots.push(slot),
            Err(rejection) => rejections.push(rejection),
        }
    }
    (slots, rejections)
}

fn gauge(tenant: &str) -> i64 {
    let text = voicegate::observability::render_metrics();
    let prefix = format!("voicegate_tenant_active_calls{{tenant=\"{tenant}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().expect("gauge value"))
}

fn rejected_count(tenant: &str, reason: &str) -> u64 {
    let text = voicegate::observability::render_metrics();
    let prefix =
        format!("voicegate_admission_rejected_total{{reason=\"{reason}\",tenant=\"{tenant}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().expect("counter value"))
}

async fn burst_never_overshoots(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let name = format!("burst-{backend:?}").to_lowercase();
    let tenant = tenant(&store, &name, 25).await;

    let (slots, rejections) = burst(&store, &tenant, 120, "burst").await;
    assert_eq!(slots.len(), 25);
    assert_eq!(rejections.len(), 95);
    assert!(rejections.iter().all(|r| r.status == 486), "{rejections:?}");
    assert_eq!(store.active_calls(tenant.id).await.unwrap(), 25);
    assert_eq!(gauge(&name), 25);
    assert_eq!(rejected_count(&name, "concurrency"), 95);

    for slot in slots {
        slot.release().await;
    }
    assert_eq!(store.active_calls(tenant.id).await.unwrap(), 0);
    assert_eq!(gauge(&name), 0);

    let (again, _) = burst(&store, &tenant, 40, "again").await;
    assert_eq!(again.len(), 25, "released slots are usable again");
    let usage = store
        .usage(tenant.id, Utc::now().date_naive(), Utc::now().date_naive())
        .await
        .unwrap();
    assert_eq!(usage[0].calls, 50);
    assert_eq!(usage[0].concurrent_peak, 25);
}
both_backends!(burst_limit, burst_never_overshoots);

async fn every_ending_path_frees_the_slot(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let name = format!("paths-{backend:?}").to_lowercase();
    let tenant = tenant(&store, &name, 3).await;

    for round in 0..20 {
        // Ended by BYE, CANCEL or a failure response: the call layer releases explicitly.
        let explicit = store.admit(&tenant, &format!("bye-{round}")).await.unwrap();
        // The call task forgets to release: dropping the slot releases it.
        let dropped = store
            .admit(&tenant, &format!("drop-{round}"))
            .await
            .unwrap();
        // The call task panics while holding the slot.
        let crashing = store
            .admit(&tenant, &format!("panic-{round}"))
            .await
            .unwrap();
        assert_eq!(store.local_active_calls(tenant.id), 3);

        explicit.release().await;
        drop(dropped);
        let task = tokio::spawn(async move {
            let _held = crashing;
            panic!("call task crashed");
        });
        assert!(task.await.unwrap_err().is_panic());

        store.settle().await;
        assert_eq!(store.local_active_calls(tenant.id), 0, "round {round}");
        assert_eq!(
            store.active_calls(tenant.id).await.unwrap(),
            0,
            "round {round}"
        );
        assert_eq!(gauge(&name), 0, "round {round}");
    }
    let (slots, _) = burst(&store, &tenant, 10, "after").await;
    assert_eq!(slots.len(), 3);
}
both_backends!(ending_paths, every_ending_path_frees_the_slot);

async fn suspended_tenant_is_forbidden(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let tenant = tenant(&store, "sleepy", 5).await;
    let held = store.admit(&tenant, "before").await.expect("active tenant");
    store
        .set_tenant_status("sleepy", TenantStatus::Suspended)
        .await
        .unwrap();

    // The tenant loaded before the suspension is stale; admission reads the current status.
    let rejection = store.admit(&tenant, "after").await.unwrap_err();
    assert_eq!(rejection.status, 403);
    assert_eq!(rejection.reason, RejectReason::Suspended);
    assert_eq!(
        rejection.reason_header(),
        "SIP;cause=403;text=\"tenant suspended\""
    );
    assert_eq!(
        store.local_active_calls(tenant.id),
        1,
        "rejection holds no slot"
    );

    held.release().await;
    store
        .set_tenant_status("sleepy", TenantStatus::Active)
        .await
        .unwrap();
    let resumed = store
        .admit(&tenant, "resumed")
        .await
        .expect("resumed tenant");
    resumed.release().await;
}
both_backends!(suspended, suspended_tenant_is_forbidden);

async fn over_limit_can_answer_unavailable(backend: Backend) {
    let db = TestDb::new(backend).await;
    let tenancy = TenancyConfig {
        over_limit: "unavailable".into(),
        retry_after_secs: 17,
        ..no_default_tenant()
    };
    let store = db.store(&tenancy, "node-a").await;
    let tenant = tenant(&store, "small", 1).await;
    let slot = store.admit(&tenant, "first").await.unwrap();
    let rejection = store.admit(&tenant, "second").await.unwrap_err();
    assert_eq!(rejection.status, 503);
    assert_eq!(rejection.retry_after, Some(17));
    assert!(
        rejection
            .headers()
            .contains(&("Retry-After", "17".to_string()))
    );
    slot.release().await;
}
both_backends!(over_limit_unavailable, over_limit_can_answer_unavailable);

async fn monthly_calls_hold_under_burst(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let tenant = store
        .create_tenant(voicegate::tenancy::NewTenant {
            name: "monthly".into(),
            limits: TenantLimits {
                max_concurrent_calls: 0,
                monthly_calls: 7,
                monthly_minutes: 0,
            },
            ..Default::default()
        })
        .await
        .unwrap();
    let (slots, rejections) = burst(&store, &tenant, 30, "month").await;
    assert_eq!(slots.len(), 7);
    assert!(
        rejections
            .iter()
            .all(|r| r.status == 403 && r.reason == RejectReason::MonthlyCalls)
    );
    for slot in slots {
        slot.release().await;
    }
    // Free slots do not help: the month's calls are used up.
    let rejection = store.admit(&tenant, "later").await.unwrap_err();
    assert_eq!(rejection.reason, RejectReason::MonthlyCalls);
    assert_eq!(
        rejection.reason_header(),
        "SIP;cause=403;text=\"monthly call limit reached\""
    );
}
both_backends!(monthly_calls, monthly_calls_hold_under_burst);

async fn monthly_minutes_count_answered_time(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let tenant = tenant(&store, "minutes", 0).await;
    let patch = TenantPatch {
        limits: Some(TenantLimits {
            max_concurrent_calls: 0,
            monthly_calls: 0,
            monthly_minutes: 2,
        }),
        ..TenantPatch::default()
    };
    let tenant_now = store.update_tenant("minutes", patch).await.unwrap();
    assert_eq!(tenant_now.limits.monthly_minutes, 2);

    let slot = store.admit(&tenant, "long-call").await.unwrap();
    let invite = Utc::now();
    store
        .record_call(CallRecord {
            call_id: "long-call".into(),
            tenant_id: tenant.id,
            from: "+12025550142".into(),
            to: "+12025550100".into(),
            forwarded_from: String::new(),
            trunk: "loopback".into(),
            codec: "pcmu".into(),
            invite_at: invite,
            answer_at: Some(invite + Duration::seconds(1)),
            end_at: invite + Duration::seconds(62),
            end_reason: "caller-bye".into(),
            sip_status: 200,
            cost_micros: 0,
            turns: vec![],
        })
        .await;
    slot.release().await;

    let rejection = store.admit(&tenant, "next").await.unwrap_err();
    assert_eq!(rejection.status, 403);
    assert_eq!(rejection.reason, RejectReason::MonthlyMinutes);
}
both_backends!(monthly_minutes, monthly_minutes_count_answered_time);

async fn route_and_admit_returns_tenant(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let tenant = tenant(&store, "shop", 2).await;
    store.add_number("shop", "+12025550100", "").await.unwrap();
    let admission = store
        .route_and_admit(Some("+12025550100"), "call-1")
        .await
        .expect("admitted");
    assert_eq!(admission.tenant.id, tenant.id);
    assert_eq!(admission.slot.call_id(), "call-1");
    assert_eq!(admission.slot.tenant_name(), "shop");
    admission.slot.release().await;
}
both_backends!(route_and_admit, route_and_admit_returns_tenant);

async fn admin_store_cannot_admit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let tenant = tenant(&store, "shop", 2).await;
    let admin = Store::connect_admin(&db.config, &no_default_tenant())
        .await
        .unwrap();
    let rejection = admin.admit(&tenant, "no-node").await.unwrap_err();
    assert_eq!(rejection.status, 503);
}
both_backends!(admin_store, admin_store_cannot_admit);

async fn many_calls_leave_nothing_behind(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.plain_store().await;
    let name = format!("soak-{backend:?}").to_lowercase();
    let tenant = tenant(&store, &name, 4).await;
    let calls = match backend {
        Backend::Sqlite => 2_000,
        Backend::Postgres => 400,
    };

    // A fixed xorshift sequence picks how each call ends, so a failure replays exactly.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut held: Vec<CallSlot> = Vec::new();
    for i in 0..calls {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if held.len() == 4 {
            let slot = held.remove((state % 4) as usize);
            match state % 3 {
                0 => slot.release().await,
                1 => drop(slot),
                _ => {
                    let task = tokio::spawn(async move {
                        let _slot = slot;
                        panic!("call task crashed");
                    });
                    assert!(task.await.unwrap_err().is_panic());
                }
            }
            // A dropped slot's lease is deleted by a background task on PostgreSQL.
            store.settle().await;
        }
        held.push(
            store
                .admit(&tenant, &format!("soak-{i}"))
                .await
                .expect("a slot is free"),
        );
    }
    for slot in held {
        slot.release().await;
    }
    store.settle().await;

    assert_eq!(store.local_active_calls(tenant.id), 0);
    assert_eq!(store.active_calls(tenant.id).await.unwrap(), 0);
    assert_eq!(gauge(&name), 0);
    let today = Utc::now().date_naive();
    let usage = store.usage(tenant.id, today, today).await.unwrap();
    assert_eq!(usage[0].calls, calls);
    assert_eq!(usage[0].concurrent_peak, 4);
}
both_backends!(soak, many_calls_leave_nothing_behind);
