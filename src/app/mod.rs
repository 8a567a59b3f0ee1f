//! App layer
