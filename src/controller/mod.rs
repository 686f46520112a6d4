//! The cluster controller: the DC (lowest node id of the quorate ring) runs
//! the scheduler on every change and executes its transitions; every node
//! runs the actions meant for it. See docs/controller.md.

pub mod summary;
