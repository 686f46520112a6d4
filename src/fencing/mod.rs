//! Fence devices (placeholder: filled in by the fencing work).
