//! The one-command local Weir stack.
