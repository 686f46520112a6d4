//! The policy engine (placeholder: filled in by the scheduler work).
