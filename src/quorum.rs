//! votequorum rules (placeholder: filled in by the quorum work).
