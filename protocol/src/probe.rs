//! Request probing: see the module body.
