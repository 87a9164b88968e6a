//! Planning: from rendered manifests to an ordered, validated set ready to apply.
//!
//! [`validate`] checks the whole set (identity, names, known kinds and served versions,
//! namespace scope, duplicates) and defaults namespaces; [`Plan`] orders it the way Helm and Argo CD do and
//! splits it into stages; [`prune_order`] and [`to_prune`] decide what goes, and in which
//! order, when objects leave the set. All pure: API knowledge comes in through a
//! [`ScopeResolver`] (server discovery in the agent, [`static_scope`] for offline rendering).
//! The apply, prune and inventory code consumes what this module produces.

mod names;
mod order;
mod scope;
mod validate;

pub use names::{check_name, dns1035_label, dns1123_label, dns1123_subdomain, path_segment};
pub use order::{
    Plan, STAGE_CLUSTER, STAGE_RESOURCES, is_cluster_stage, kind_rank, prune_order, sort_for_apply,
    to_prune,
};
pub use scope::{
    CrdScopes, Scope, ScopeResolver, Served, ServedBy, StaticScope, builtin_kinds, static_scope,
};
pub use validate::{ValidationError, validate};
