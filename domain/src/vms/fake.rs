//! An in-memory backend for tests of what sits above the trait (quotas,
//! jobs, the lifecycle, the reconciler). The real backends have their own
//! tests against libvirt and an OpenStack double.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::backend::{Capacity, VmBackend, VmError, VmSpec, VmState, VmStatus};

#[derive(Debug, Clone)]
pub struct FakeVm {
    pub spec: VmSpec,
    pub state: VmState,
    /// Status reads left before a building VM runs.
    pub builds: u32,
    pub addresses: Vec<String>,
}

#[derive(Debug, Default)]
pub struct FakeBackend {
    pub vms: Mutex<BTreeMap<String, FakeVm>>,
    /// The next `create` fails with this.
    pub fail_create: Mutex<Option<VmError>>,
    /// New VMs take this many status reads to run.
    pub build_reads: Mutex<u32>,
    /// New VMs break while built, with this fault.
    pub break_with: Mutex<Option<String>>,
    pub cores: u32,
    next: Mutex<u32>,
}

impl FakeBackend {
    pub fn new(cores: u32) -> FakeBackend {
        FakeBackend {
            cores,
            ..FakeBackend::default()
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Deletes a VM behind Bootler's back.
    pub fn vanish(&self, id: &str) {
        Self::lock(&self.vms).remove(id);
    }

    pub fn count(&self) -> usize {
        Self::lock(&self.vms).len()
    }
}

#[async_trait]
impl VmBackend for FakeBackend {
    fn kind(&self) -> &'static str {
        "libvirt"
    }

    async fn create(&self, spec: &VmSpec) -> Result<String, VmError> {
        if let Some(err) = Self::lock(&self.fail_create).take() {
            return Err(err);
        }
        let n = {
            let mut next = Self::lock(&self.next);
            *next += 1;
            *next
        };
        let id = format!("fake-{n}");
        let broken = Self::lock(&self.break_with).clone();
        Self::lock(&self.vms).insert(
            id.clone(),
            FakeVm {
                spec: spec.clone(),
                state: if broken.is_some() {
                    VmState::Error
                } else {
                    VmState::Building
                },
                builds: *Self::lock(&self.build_reads),
                addresses: vec![format!("192.0.2.{n}")],
            },
        );
        Ok(id)
    }

    async fn status(&self, id: &str) -> Result<VmStatus, VmError> {
        let fault = Self::lock(&self.break_with).clone();
        let mut vms = Self::lock(&self.vms);
        let Some(vm) = vms.get_mut(id) else {
            return Ok(VmStatus {
                state: VmState::Missing,
                addresses: Vec::new(),
                fault: None,
            });
        };
        if vm.state == VmState::Building {
            if vm.builds == 0 {
                vm.state = VmState::Running;
            } else {
                vm.builds -= 1;
            }
        }
        Ok(VmStatus {
            state: vm.state,
            addresses: if vm.state == VmState::Running {
                vm.addresses.clone()
            } else {
                Vec::new()
            },
            fault: if vm.state == VmState::Error {
                fault
            } else {
                None
            },
        })
    }

    async fn start(&self, id: &str) -> Result<(), VmError> {
        match Self::lock(&self.vms).get_mut(id) {
            Some(vm) => {
                vm.state = VmState::Running;
                Ok(())
            }
            None => Err(VmError::Refused(format!("There is no VM {id}."))),
        }
    }

    async fn stop(&self, id: &str) -> Result<(), VmError> {
        match Self::lock(&self.vms).get_mut(id) {
            Some(vm) => {
                vm.state = VmState::Stopped;
                Ok(())
            }
            None => Err(VmError::Refused(format!("There is no VM {id}."))),
        }
    }

    async fn destroy(&self, id: &str) -> Result<(), VmError> {
        Self::lock(&self.vms).remove(id);
        Ok(())
    }

    async fn capacity(&self) -> Result<Capacity, VmError> {
        Ok(Capacity {
            max_host_cores: Some(self.cores),
            total_cores: Some(self.cores),
            total_memory_mib: Some(65536),
            description: "fake backend".into(),
        })
    }
}
