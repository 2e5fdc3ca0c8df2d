//! Integration tests of `sundial-storage`, linked as one binary: the conformance suite that
//! every backend runs.

mod conformance;
