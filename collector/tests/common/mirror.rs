//! A local HTTP archive mirror on 127.0.0.1 for the sync tests: serves a directory tree with
//! directory listings (HTML links, as the public archives serve them), can be told to
//! misbehave per path, and logs every request.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// How the mirror answers a path instead of serving it.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status, with `Retry-After` when given.
    Status(u16, Option<u64>),
    /// The file's full `Content-Length`, then only its first half and a closed connection.
    CutInTheMiddle,
    /// An HTML error page with status 200.
    HtmlPage,
}

#[derive(Default)]
struct Shared {
    /// Path → fault, with how many more requests it applies to (`None`: all).
    faults: HashMap<String, (Fault, Option<u32>)>,
    /// Method and path of every request, in order.
    log: Vec<(String, String)>,
}

/// A running mirror; stops when dropped.
pub struct Mirror {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub root: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct AppState {
    root: PathBuf,
    shared: Arc<Mutex<Shared>>,
}

impl Mirror {
    /// Serves `root` on a free port of 127.0.0.1.
    pub fn start(root: &Path) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = AppState {
            root: root.to_path_buf(),
            shared: Arc::clone(&shared),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            url: format!("http://{addr}"),
            root: root.to_path_buf(),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// From now on, `path` (as requested, e.g. `/rrc00/2016.08/updates.20160811.1600.gz`)
    /// answers with `fault`, for `times` requests (`None`: until cleared).
    pub fn fault(&self, path: &str, fault: Fault, times: Option<u32>) {
        self.shared
            .lock()
            .unwrap()
            .faults
            .insert(path.to_string(), (fault, times));
    }

    /// Every request so far: (method, path).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.shared.lock().unwrap().log.clone()
    }

    /// Paths of the files (not listings) downloaded with GET so far.
    pub fn downloads(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|(m, p)| m == "GET" && !p.ends_with('/'))
            .map(|(_, p)| p)
            .collect()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.shared.lock().unwrap().log.clear();
    }

    /// Places `data` at `path` under the root (directories created).
    pub fn publish(&self, path: &str, data: &[u8]) {
        let file = self.root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        // Written aside and renamed, as an archive publishes: never seen half-written.
        let tmp = file.with_extension("partial");
        std::fs::write(&tmp, data).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    let path = uri.path().to_string();
    let fault = {
        let mut shared = state.shared.lock().unwrap();
        shared.log.push((method.to_string(), path.clone()));
        match shared.faults.get_mut(&path) {
            Some((fault, Some(0))) => {
                let _ = fault;
                None
            }
            Some((fault, Some(n))) => {
                *n -= 1;
                Some(fault.clone())
            }
            Some((fault, None)) => Some(fault.clone()),
            None => None,
        }
    };
    let relative = path.trim_start_matches('/');
    if relative.split('/').any(|c| c == "..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let file = state.root.join(relative);
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), "fault").into_response();
            if let Some(s) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            return response;
        }
        Some(Fault::HtmlPage) => {
            return (
                [(header::CONTENT_TYPE, "text/html")],
                "<!DOCTYPE html><html><body><h1>503 Backend fetch failed</h1></body></html>",
            )
                .into_response();
        }
        Some(Fault::CutInTheMiddle) => {
            let data = std::fs::read(&file).unwrap_or_default();
            let half = data[..data.len() / 2].to_vec();
            let len = data.len();
            // The announced length is the whole file's: the server closes the connection
            // when the shorter body ends, as a download cut in the middle looks.
            let mut response = Response::new(Body::from(half));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            return response;
        }
        None => {}
    }
    if path.ends_with('/') {
        let Ok(entries) = std::fs::read_dir(&file) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".partial"))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() {
                    format!("{name}/")
                } else {
                    name
                }
            })
            .collect();
        names.sort();
        let mut html = format!(
            "<html><head><title>Index of {path}</title></head><body><h1>Index of {path}</h1>\
             <a href=\"?C=N;O=D\">Name</a><hr><a href=\"../\">Parent Directory</a>\n"
        );
        for n in names {
            let _ = writeln!(html, "<a href=\"{n}\">{n}</a>");
        }
        html.push_str("</body></html>");
        return ([(header::CONTENT_TYPE, "text/html")], html).into_response();
    }
    match std::fs::read(&file) {
        Ok(data) if file.is_file() => {
            if method == Method::HEAD {
                let mut response = Response::new(Body::empty());
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
                return response;
            }
            ([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
