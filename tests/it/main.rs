//! One integration-test binary (link time matters on two cores): each module is one area.

mod notion;
