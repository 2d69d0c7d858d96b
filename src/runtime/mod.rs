//! The child side of a container start: the policy tables, the mount plan built from
//! them, the executor that applies it inside the new root, and the sequence from
//! clone to the exec of init.

pub mod apply;
pub mod channel;
pub mod child;
pub mod kernel;
pub mod plan;
pub mod policy;
