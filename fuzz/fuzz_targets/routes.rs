//! Route patterns: building a table from arbitrary patterns and matching
//! arbitrary requests never panic; a match is always a route of the table.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use tollgate::route::Routes;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let request = lines.next().unwrap_or_default();
    let mut builder = Routes::builder();
    for (index, pattern) in lines.take(8).enumerate() {
        builder = builder.declare(pattern, index % 2 == 0);
    }
    let Ok(routes) = builder.build() else { return };
    let (method, path) = request.split_once(' ').unwrap_or(("GET", request));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let route = routes.find(&method, path);
    assert!(route.is_default() || routes.get(route.name()).is_some());
});
