//! Instances over a real SQLite database and the job queue, with the
//! in-memory backend: the three answers, limits and quotas (also when
//! asked at once), the lifecycle and the reconciler.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::backend::{VmBackend, VmError};
use super::config::{Flavor, Image};
use super::fake::FakeBackend;
use super::instances::*;
use crate::db::Db;
use crate::jobs::kinds::vm::VmJob;
use crate::jobs::{Events, Jobs, Settings, kinds};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb8Qb5fGB8Yk1lJc2yqb0F0+f3e3m1vSxV6Qb2lJ0bq ana@laptop";

struct Fixture {
    db: Db,
    instances: Instances,
    jobs: Jobs,
    backend: Arc<FakeBackend>,
    vm_job: VmJob,
    _dir: tempfile::TempDir,
}

fn rules() -> VmRules {
    VmRules {
        backend: "libvirt",
        flavors: vec![
            Flavor::new("small", 1, 1024, 10),
            Flavor::new("medium", 2, 4096, 20),
            Flavor::new("huge", 16, 65536, 100),
        ],
        images: vec![Image {
            name: "debian-12".into(),
            reference: "/var/lib/images/debian-12.qcow2".into(),
            login: Some("debian".into()),
        }],
        max_vcpus_per_vm: 0,
        vcpu_budget: 6,
        per_user: Usage {
            instances: 3,
            vcpus: 4,
            memory_mib: 8192,
        },
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let events = Events::new(db.clone());
    let instances = Instances::new(db.clone(), rules());
    let backend = Arc::new(FakeBackend::new(8));
    let vm_job = VmJob {
        db: db.clone(),
        events: events.clone(),
        instances: instances.clone(),
        backend: backend.clone(),
        create_timeout: Duration::from_secs(5),
        poll: Duration::from_millis(20),
    };
    let settings = Settings {
        lease: Duration::from_secs(30),
        poll: Duration::from_millis(20),
        max_attempts: 2,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
        event_retention: Duration::from_secs(3600),
    };
    let jobs = Jobs::new(
        db.clone(),
        kinds::builtin().with(vm_job.clone()),
        events,
        settings,
    );
    Fixture {
        db,
        instances,
        jobs,
        backend,
        vm_job,
        _dir: dir,
    }
}

async fn person(db: &Db, name: &str, admin: bool) -> Actor {
    let id: i64 = crate::with_pool!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO users (username, email, display_name, role, status, created_at) \
             VALUES ($1, $2, $3, $4, 'active', $5) RETURNING id",
        )
        .bind(name)
        .bind(format!("{name}@uminho.pt"))
        .bind(name)
        .bind(if admin { "admin" } else { "user" })
        .bind(Utc::now())
        .fetch_one(pool)
        .await
    })
    .unwrap();
    Actor {
        user_id: id,
        username: name.into(),
        admin,
    }
}

fn ask(hostname: &str, flavor: &str) -> NewInstance {
    NewInstance {
        hostname: hostname.into(),
        flavor: flavor.into(),
        image: "debian-12".into(),
        ssh_key: Some(KEY.into()),
    }
}

/// Waits until the instance is in `state` (or gone, for `None`).
async fn settles(
    f: &Fixture,
    actor: &Actor,
    id: i64,
    state: Option<InstanceState>,
) -> Option<Instance> {
    for _ in 0..250 {
        match f.instances.get(actor, id).await {
            Ok(i) if Some(i.state) == state => return Some(i),
            Err(VmsError::NotFound(_)) if state.is_none() => return None,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!(
        "instance {id} never became {state:?}: {:?}",
        f.instances.get(actor, id).await
    );
}

#[tokio::test]
async fn three_answers_make_a_running_vm_and_destroy_removes_it() {
    let f = fixture().await;
    let ana = person(&f.db, "ana", false).await;
    let workers = f.jobs.start_workers(2);
    *f.backend.build_reads.lock().unwrap() = 3;

    let (vm, job) = f
        .instances
        .create(&f.jobs, &ana, &ask("Web-1", "medium"), Utc::now())
        .await
        .unwrap();
    assert_eq!(vm.hostname, "web-1");
    assert_eq!(vm.state, InstanceState::Creating);
    assert_eq!((vm.vcpus, vm.memory_mib, vm.disk_gib), (2, 4096, 20));
    assert_eq!(job.kind, "vm");
    let vm = settles(&f, &ana, vm.id, Some(InstanceState::Running))
        .await
        .unwrap();
    assert_eq!(vm.addresses, ["192.0.2.1"]);
    assert_eq!(vm.ssh_command().as_deref(), Some("ssh debian@192.0.2.1"));
    // The backend got the three answers, resolved.
    {
        let vms = f.backend.vms.lock().unwrap();
        let spec = &vms[vm.backend_id.as_deref().unwrap()].spec;
        assert_eq!(spec.hostname, "web-1");
        assert_eq!(spec.name, format!("bootler-{}-web-1", vm.id));
        assert_eq!(spec.image, "/var/lib/images/debian-12.qcow2");
        assert!(spec.ssh_key.starts_with("ssh-ed25519 AAAA"));
        assert_eq!(spec.owner, "ana");
    }

    // Stop and start.
    let (vm, _) = f
        .instances
        .request(&f.jobs, &ana, vm.id, VmAction::Stop, Utc::now())
        .await
        .unwrap();
    assert_eq!(vm.state, InstanceState::Stopping);
    settles(&f, &ana, vm.id, Some(InstanceState::Stopped)).await;
    let err = f
        .instances
        .request(&f.jobs, &ana, vm.id, VmAction::Stop, Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is stopped"), "{err}");
    f.instances
        .request(&f.jobs, &ana, vm.id, VmAction::Start, Utc::now())
        .await
        .unwrap();
    settles(&f, &ana, vm.id, Some(InstanceState::Running)).await;

    // Someone else sees nothing of it.
    let rui = person(&f.db, "rui", false).await;
    assert!(matches!(
        f.instances.get(&rui, vm.id).await,
        Err(VmsError::NotFound(_))
    ));
    assert!(
        f.instances
            .request(&f.jobs, &rui, vm.id, VmAction::Destroy, Utc::now())
            .await
            .is_err()
    );

    f.instances
        .request(&f.jobs, &ana, vm.id, VmAction::Destroy, Utc::now())
        .await
        .unwrap();
    assert!(settles(&f, &ana, vm.id, None).await.is_none());
    assert_eq!(f.backend.count(), 0, "nothing left on the backend");
    workers.shutdown().await;
}

#[tokio::test]
async fn bad_answers_say_what_is_wrong_and_write_nothing() {
    let f = fixture().await;
    let ana = person(&f.db, "ana", false).await;
    for (new, words) in [
        (ask("-web", "small"), "not a host name"),
        (ask("web_1", "small"), "not a host name"),
        (
            ask("web", "tiny"),
            "no flavor “tiny”: choose one of small, medium, huge",
        ),
        (
            NewInstance {
                image: "windows".into(),
                ..ask("web", "small")
            },
            "no image “windows”",
        ),
        (
            NewInstance {
                ssh_key: Some("ssh-rsa nonsense".into()),
                ..ask("web", "small")
            },
            "",
        ),
        (
            NewInstance {
                ssh_key: None,
                ..ask("web", "small")
            },
            "Give an SSH public key",
        ),
    ] {
        let err = f
            .instances
            .create(&f.jobs, &ana, &new, Utc::now())
            .await
            .unwrap_err();
        assert!(matches!(err, VmsError::Invalid(_)), "{err}");
        assert!(err.to_string().contains(words), "{err}");
    }
    assert!(f.instances.list(&ana, false).await.unwrap().is_empty());
    // A profile key is used when none is pasted.
    crate::with_pool!(&f.db, pool => {
        sqlx::query(
            "INSERT INTO ssh_keys (user_id, name, algorithm, public_key, fingerprint, bits, created_at) \
             VALUES ($1, 'laptop', 'ssh-ed25519', $2, 'SHA256:x', 256, $3)",
        )
        .bind(ana.user_id)
        .bind("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb8Qb5fGB8Yk1lJc2yqb0F0+f3e3m1vSxV6Qb2lJ0bq")
        .bind(Utc::now())
        .execute(pool)
        .await
        .map(|_| ())
    })
    .unwrap();
    let (vm, _) = f
        .instances
        .create(
            &f.jobs,
            &ana,
            &NewInstance {
                ssh_key: None,
                ..ask("web", "small")
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(vm.ssh_key.starts_with("ssh-ed25519 AAAAC3"));
    // The same name twice: refused.
    let err = f
        .instances
        .create(&f.jobs, &ana, &ask("web", "small"), Utc::now())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already have a VM named web"),
        "{err}"
    );
}

#[tokio::test]
async fn quotas_and_the_budget_refuse_with_the_reason_also_at_once() {
    let f = fixture().await;
    let ana = person(&f.db, "ana", false).await;
    let rui = person(&f.db, "rui", false).await;
    f.instances.set_host_cores(8);
    // Bigger than a node.
    let err = f
        .instances
        .create(&f.jobs, &ana, &ask("big", "huge"), Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 8"), "{err}");
    // The form says so before anyone asks.
    let choices = f.instances.choices(&ana).await.unwrap();
    let huge = choices.flavors.iter().find(|c| c.name == "huge").unwrap();
    assert!(huge.unavailable.as_deref().unwrap().contains("at most 8"));
    assert!(
        choices
            .flavors
            .iter()
            .find(|c| c.name == "small")
            .unwrap()
            .unavailable
            .is_none()
    );

    // Ana: 4 vCPUs at most.
    f.instances
        .create(&f.jobs, &ana, &ask("a1", "medium"), Utc::now())
        .await
        .unwrap();
    f.instances
        .create(&f.jobs, &ana, &ask("a2", "medium"), Utc::now())
        .await
        .unwrap();
    let err = f
        .instances
        .create(&f.jobs, &ana, &ask("a3", "small"), Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("you use 4 of your 4"), "{err}");
    let choices = f.instances.choices(&ana).await.unwrap();
    assert_eq!(
        choices.usage,
        Usage {
            instances: 2,
            vcpus: 4,
            memory_mib: 8192
        }
    );
    assert!(choices.flavors.iter().all(|c| c.unavailable.is_some()));

    // The budget (6 vCPUs) has 2 left: Rui and Rui again asking for two
    // each at the same moment: exactly one gets them.
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for name in ["r1", "r2", "r3", "r4"] {
        let f = f.clone();
        let rui = rui.clone();
        tasks.push(tokio::spawn(async move {
            f.instances
                .create(&f.jobs, &rui, &ask(name, "medium"), Utc::now())
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(err) => assert!(err.to_string().contains("budget is spent"), "{err}"),
        }
    }
    assert_eq!(won, 1, "one of four gets the last two vCPUs");
    let all = f
        .instances
        .list(
            &Actor {
                user_id: 0,
                username: "x".into(),
                admin: true,
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(all.iter().map(|i| i.vcpus).sum::<u32>(), 6);
}

#[tokio::test]
async fn failures_leave_nothing_on_the_backend_and_say_why() {
    let f = fixture().await;
    let ana = person(&f.db, "ana", false).await;
    let workers = f.jobs.start_workers(1);

    // The backend refuses: failed, with its words.
    *f.backend.fail_create.lock().unwrap() = Some(VmError::Refused(
        "The base image /x.qcow2 does not exist on the hypervisor host.".into(),
    ));
    let (vm, _) = f
        .instances
        .create(&f.jobs, &ana, &ask("one", "small"), Utc::now())
        .await
        .unwrap();
    let vm = settles(&f, &ana, vm.id, Some(InstanceState::Failed))
        .await
        .unwrap();
    assert!(vm.error.unwrap().contains("/x.qcow2 does not exist"));
    // A failed VM holds nothing: it does not count, and can be removed.
    assert_eq!(f.instances.choices(&ana).await.unwrap().usage.instances, 0);
    f.instances
        .request(&f.jobs, &ana, vm.id, VmAction::Destroy, Utc::now())
        .await
        .unwrap();
    settles(&f, &ana, vm.id, None).await;

    // It breaks while built: removed from the backend, failed with the fault.
    *f.backend.break_with.lock().unwrap() = Some("No valid host was found.".into());
    let (vm, _) = f
        .instances
        .create(&f.jobs, &ana, &ask("two", "small"), Utc::now())
        .await
        .unwrap();
    let vm = settles(&f, &ana, vm.id, Some(InstanceState::Failed))
        .await
        .unwrap();
    assert_eq!(vm.error.as_deref(), Some("No valid host was found."));
    assert_eq!(f.backend.count(), 0);
    *f.backend.break_with.lock().unwrap() = None;

    // The backend does not answer once: still creating, saying why, then
    // running on the next attempt with the note gone.
    *f.backend.fail_create.lock().unwrap() = Some(VmError::Unavailable(
        "libvirt at qemu:///system does not answer.".into(),
    ));
    let (vm, _) = f
        .instances
        .create(&f.jobs, &ana, &ask("retry", "small"), Utc::now())
        .await
        .unwrap();
    let vm = settles(&f, &ana, vm.id, Some(InstanceState::Running))
        .await
        .unwrap();
    assert_eq!(vm.error, None);
    // The owner was told why it took long.
    let told: Vec<String> = crate::with_pool!(&f.db, pool => {
        sqlx::query_scalar("SELECT data FROM events WHERE kind = 'instance' AND user_id = $1")
            .bind(ana.user_id)
            .fetch_all(pool)
            .await
    })
    .unwrap();
    assert!(
        told.iter()
            .any(|d| d.contains("does not answer. Bootler tries again.")),
        "{told:?}"
    );

    // It never runs in time: removed, failed.
    *f.backend.build_reads.lock().unwrap() = 100_000;
    let (vm, _) = f
        .instances
        .create(&f.jobs, &ana, &ask("three", "small"), Utc::now())
        .await
        .unwrap();
    let vm = settles(&f, &ana, vm.id, Some(InstanceState::Failed))
        .await
        .unwrap();
    assert!(vm.error.unwrap().contains("did not run within 5 s"));
    assert_eq!(f.backend.count(), 1, "only the VM that runs");
    workers.shutdown().await;
}

#[tokio::test]
async fn the_reconciler_notices_what_changed_behind_bootlers_back() {
    let f = fixture().await;
    let ana = person(&f.db, "ana", false).await;
    let workers = f.jobs.start_workers(1);
    let (vm, _) = f
        .instances
        .create(&f.jobs, &ana, &ask("web", "small"), Utc::now())
        .await
        .unwrap();
    let vm = settles(&f, &ana, vm.id, Some(InstanceState::Running))
        .await
        .unwrap();
    assert_eq!(f.vm_job.reconcile().await.unwrap(), 0, "nothing changed");
    // Stopped from inside, then deleted by someone else.
    f.backend
        .stop(vm.backend_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(f.vm_job.reconcile().await.unwrap(), 1);
    assert_eq!(
        f.instances.get(&ana, vm.id).await.unwrap().state,
        InstanceState::Stopped
    );
    f.backend.vanish(vm.backend_id.as_deref().unwrap());
    assert_eq!(f.vm_job.reconcile().await.unwrap(), 1);
    assert_eq!(
        f.instances.get(&ana, vm.id).await.unwrap().state,
        InstanceState::Missing
    );
    // A missing VM holds nothing and can be removed.
    assert_eq!(f.instances.choices(&ana).await.unwrap().usage.instances, 0);
    f.instances
        .request(&f.jobs, &ana, vm.id, VmAction::Destroy, Utc::now())
        .await
        .unwrap();
    settles(&f, &ana, vm.id, None).await;
    // The backend's cores became the per-VM limit.
    assert_eq!(f.instances.max_vcpus_per_vm(), 8);
    workers.shutdown().await;
}

#[tokio::test]
async fn a_persons_own_limits_replace_the_default() {
    let f = fixture().await;
    let ana = person(&f.db, "ana", false).await;
    let boss = person(&f.db, "boss", true).await;
    // The default: 4 vCPUs. Ana gets 1 VM and no vCPU limit.
    let quota = f.instances.quota(&ana, "ana").await.unwrap();
    assert_eq!(quota.own, OwnLimits::default());
    assert_eq!(quota.default.vcpus, 4);
    let own = OwnLimits {
        instances: Some(1),
        vcpus: Some(0),
        memory_mib: None,
    };
    assert!(matches!(
        f.instances.set_quota(&ana, "ana", own).await,
        Err(VmsError::Forbidden(_))
    ));
    let err = f
        .instances
        .set_quota(
            &boss,
            "ana",
            OwnLimits {
                instances: Some(5000),
                ..own
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`max_vms` is between 0"), "{err}");
    assert!(matches!(
        f.instances.set_quota(&boss, "nobody", own).await,
        Err(VmsError::NotFound(_))
    ));
    let quota = f.instances.set_quota(&boss, "ana", own).await.unwrap();
    assert_eq!(quota.own, own);
    let choices = f.instances.choices(&ana).await.unwrap();
    assert_eq!(
        (
            choices.limits.instances,
            choices.limits.vcpus,
            choices.limits.memory_mib
        ),
        (1, 0, 8192)
    );
    // Two vCPUs: fine without a vCPU limit; a second VM is one too many.
    f.instances
        .create(&f.jobs, &ana, &ask("a1", "medium"), Utc::now())
        .await
        .unwrap();
    let err = f
        .instances
        .create(&f.jobs, &ana, &ask("a2", "small"), Utc::now())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("You have 1 of your 1 VMs"),
        "{err}"
    );
    assert_eq!(f.instances.own_quotas(&boss).await.unwrap().len(), 1);
    // Back to the default.
    let quota = f
        .instances
        .set_quota(&boss, "ana", OwnLimits::default())
        .await
        .unwrap();
    assert_eq!(quota.own, OwnLimits::default());
    assert!(f.instances.own_quotas(&boss).await.unwrap().is_empty());
}
