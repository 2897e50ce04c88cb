//! The model's unload report in the harness's own (serializable) terms, so it exists on every
//! host even where the model does not.

use std::collections::BTreeMap;

use serde::Serialize;

/// One contract violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViolationEntry {
    /// The rule, named like the Driver Verifier check that would catch it.
    pub rule: String,
    /// What happened.
    pub detail: String,
}

/// What was outstanding when the driver unloaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Leaked {
    /// Live pool blocks by tag.
    pub pool: BTreeMap<String, usize>,
    /// Bytes in live pool blocks.
    pub pool_bytes: usize,
    /// IRPs not freed.
    pub irps: usize,
    /// MDLs not freed.
    pub mdls: usize,
    /// WSK sockets not closed.
    pub sockets: usize,
    /// Provider NPI captures not released.
    pub npi_captures: usize,
    /// WSK registrations not deregistered.
    pub registrations: usize,
}

impl Leaked {
    /// `true` if nothing leaked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Counters over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Pool allocations.
    pub pool_allocations: u64,
    /// IRP allocations.
    pub irp_allocations: u64,
    /// MDL allocations.
    pub mdl_allocations: u64,
    /// Datagrams put on the wire by the model's provider.
    pub datagrams_sent: u64,
    /// Payload bytes put on the wire.
    pub bytes_sent: u64,
    /// IRPs completed by the provider.
    pub irps_completed: u64,
    /// IRPs the provider pended (returned `STATUS_PENDING` for).
    pub irps_pended: u64,
    /// Faults injected.
    pub faults_injected: u64,
}

/// The model's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ModelReport {
    /// Contract violations, in order.
    pub violations: Vec<ViolationEntry>,
    /// Leaks at unload.
    pub leaked: Leaked,
    /// Counters.
    pub stats: Counters,
}

impl ModelReport {
    /// No violations and no leaks.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.leaked.is_empty()
    }
}

#[cfg(unix)]
impl From<wskudp_kmodel::Report> for ModelReport {
    fn from(report: wskudp_kmodel::Report) -> Self {
        let stats = report.stats;
        Self {
            violations: report
                .violations
                .into_iter()
                .map(|v| ViolationEntry {
                    rule: v.rule.to_owned(),
                    detail: v.detail,
                })
                .collect(),
            leaked: Leaked {
                pool: report.leaked.pool_by_tag,
                pool_bytes: report.leaked.pool_bytes,
                irps: report.leaked.irps,
                mdls: report.leaked.mdls,
                sockets: report.leaked.sockets,
                npi_captures: report.leaked.npi_captures,
                registrations: report.leaked.registrations,
            },
            stats: Counters {
                pool_allocations: stats.pool_allocations,
                irp_allocations: stats.irp_allocations,
                mdl_allocations: stats.mdl_allocations,
                datagrams_sent: stats.datagrams_sent,
                bytes_sent: stats.bytes_sent,
                irps_completed: stats.irps_completed,
                irps_pended: stats.irps_pended,
                faults_injected: stats.faults_injected,
            },
        }
    }
}
