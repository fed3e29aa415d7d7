//! End-to-end tests: the real `node-host` binary on the real guest examples,
//! the real hub over loopback, the real Hurozo Python worker and Juturna's
//! real Warp node and pipeline, and Exosphere's own runtime.

mod call;
mod cluster;
mod dashboard;
mod exosphere;
mod files;
mod hosted;
mod hosted_workers;
mod http;
mod hub;
mod hurozo;
mod inspect;
mod juturna;
mod juturna_python;
mod languages;
mod new;
mod operator;
mod traces;
mod worker;
