//! End-to-end tests: the real `node-host` binary on the real guest examples,
//! the real hub over loopback, and the real Hurozo Python worker.

mod call;
mod files;
mod hosted;
mod hosted_workers;
mod hub;
mod hurozo;
mod inspect;
mod juturna;
mod languages;
mod new;
mod worker;
