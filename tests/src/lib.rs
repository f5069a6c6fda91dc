//! End-to-end tests over the whole Weir stack.
