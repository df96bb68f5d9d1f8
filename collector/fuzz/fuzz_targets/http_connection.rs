//! Fuzzes one connection of `serve`: arbitrary bytes from a client, over an in-memory
//! pipe, into [`lifetime::serve_connection`] with the real router (HTTP/1 or HTTP/2 by
//! protocol detection, the request tracking behind the idle timeout and the maximum age,
//! the graceful close). Every input must end in a closed connection, never a panic or a
//! connection left open.
//!
//! Time is paused (tokio's test clock, advanced whenever the runtime waits), so the header
//! and idle timeouts, the maximum age and the PINGs all fire within an execution.
//!
//! Seeds: `corpus/http_connection/` holds an HTTP/1.1 health check, an HTTP/2 one (preface,
//! SETTINGS, a HEADERS frame) and an HTTP/2 upload whose body never ends.

#![no_main]

use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nkpath_collector::Db;
use nkpath_collector::server::lifetime::{self, Lifetime};
use nkpath_collector::server::{AppState, app};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

struct Bench {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

thread_local! {
    static BENCH: Bench = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let state = AppState::new(Db::open_in_memory().expect("an in-memory database opens"));
        Bench { runtime, router: app(state) }
    };
}

const LIFETIME: Lifetime = Lifetime {
    header_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(30),
    max_age: Duration::from_secs(600),
    ping_interval: Duration::from_secs(20),
    ping_timeout: Duration::from_secs(20),
    grace: Duration::from_secs(32),
};

fuzz_target!(|bytes: &[u8]| {
    BENCH.with(|bench| {
        bench.runtime.block_on(async {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let (mut from_server, mut to_server) = tokio::io::split(client);
            let (_stop, stopping) = tokio::sync::watch::channel(false);
            let builder = LIFETIME.http_builder();
            let peer: SocketAddr = "192.0.2.1:40000".parse().expect("an address");
            let serving = lifetime::serve_connection(
                server,
                peer,
                bench.router.clone(),
                &builder,
                LIFETIME,
                stopping,
            );
            let sending = async move {
                // The server may close before it has read everything: not an error.
                let _ = to_server.write_all(bytes).await;
                // Kept open (not shut down): a client that falls silent, as in the attack.
                std::future::pending::<()>().await;
            };
            let reading = async move {
                let mut sink = vec![0u8; 16 * 1024];
                while matches!(from_server.read(&mut sink).await, Ok(n) if n > 0) {}
            };
            // Bounded by the maximum age plus the grace period, in paused time.
            let limit = LIFETIME.max_age + LIFETIME.grace + Duration::from_secs(60);
            let served = tokio::time::timeout(limit, async {
                tokio::select! {
                    ended = serving => ended,
                    () = sending => unreachable!("sending never ends"),
                }
            });
            let (served, ()) = tokio::join!(served, reading);
            assert!(served.is_ok(), "a connection outlived its maximum age");
        });
    });
});
