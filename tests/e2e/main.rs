//! End-to-end tests: the real `node-host` binary on the real guest examples.

mod call;
mod files;
mod inspect;
