//! (written in its own change)
