//! HTTP for the archives: directory listings and file downloads, one request at a time,
//! with a User-Agent that names nkpath, retries with backoff, and `Retry-After` honoured.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use rand::Rng as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

/// The User-Agent of every request: what is asking, and where to read about it.
pub const USER_AGENT: &str = concat!(
    "nkpath-collector/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/nkpath/nkpath)"
);

/// How often and how long to try a request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request (at least 1).
    pub tries: u32,
    /// Wait after the first failure; doubled after each further one (plus up to a quarter
    /// more, at random, so that many collectors do not retry in step).
    pub base: Duration,
    /// Longest wait, `Retry-After` included.
    pub max_wait: Duration,
    /// Longest a request may take, from connecting to the last byte.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            tries: 4,
            base: Duration::from_secs(5),
            max_wait: Duration::from_mins(5),
            timeout: Duration::from_mins(30),
        }
    }
}

/// Why a request failed (after its retries, where a retry could help).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 404: not published (or no longer).
    #[error("{url}: not found (404)")]
    NotFound {
        /// The URL.
        url: String,
    },
    /// Another HTTP status.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// No answer: connection refused, reset, timed out, or a body cut off.
    #[error("{url}: {detail}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The body ended before the length the server announced.
    #[error("{url}: download cut short: {got} of {expected} bytes")]
    Cut {
        /// The URL.
        url: String,
        /// Bytes received.
        got: u64,
        /// Bytes announced (`Content-Length`).
        expected: u64,
    },
    /// An HTML page came instead of an MRT file (an error page of a proxy or the mirror).
    #[error("{url}: the server sent an HTML page, not an MRT file")]
    Html {
        /// The URL.
        url: String,
    },
    /// The download could not be written here.
    #[error("{url}: cannot write the download to {file}: {source}")]
    Write {
        /// The URL.
        url: String,
        /// The local file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl FetchError {
    /// A later try may succeed.
    fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Self::Transport { .. } | Self::Cut { .. } | Self::Html { .. } => true,
            Self::NotFound { .. } | Self::Write { .. } => false,
        }
    }
}

/// A failed try, and how long the server asked to wait before the next one.
struct Failure {
    error: FetchError,
    retry_after: Option<Duration>,
}

impl From<FetchError> for Failure {
    fn from(error: FetchError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// The HTTP client of one archive: its requests are made one after another, never at once.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl Fetcher {
    /// A client with this retry policy.
    pub fn new(retry: RetryPolicy) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(30))
            .timeout(retry.timeout)
            .build()?;
        Ok(Self { client, retry })
    }

    /// The directory listing at `url` (HTML); `None` when it is not there (404): a month not
    /// published yet.
    pub async fn listing(&self, url: &str) -> Result<Option<String>, FetchError> {
        match self.with_retries(|| self.get_text(url)).await {
            Ok(text) => Ok(Some(text)),
            Err(FetchError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The size the server gives for `url` (a HEAD request), if it gives one.
    pub async fn size(&self, url: &str) -> Result<Option<u64>, FetchError> {
        self.with_retries(|| async {
            let response = self
                .client
                .head(url)
                .send()
                .await
                .map_err(|e| transport(url, &e))?;
            match response.status() {
                StatusCode::NOT_FOUND => Err(FetchError::NotFound {
                    url: url.to_string(),
                }
                .into()),
                s if s.is_success() => Ok(response
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())),
                status => Err(FetchError::Status {
                    url: url.to_string(),
                    status,
                }
                .into()),
            }
        })
        .await
    }

    /// Downloads `url` into `dest` (replacing it); the bytes written.
    pub async fn download(&self, url: &str, dest: &Path) -> Result<u64, FetchError> {
        let result = self.with_retries(|| self.get_file(url, dest)).await;
        if result.is_err() {
            // Nothing half-downloaded stays behind.
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let tries = self.retry.tries.max(1);
        for n in 1..=tries {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(f) if n < tries && f.error.retryable() => {
                    let wait = f
                        .retry_after
                        .unwrap_or_else(|| self.backoff(n))
                        .min(self.retry.max_wait);
                    tracing::warn!(
                        "{} (try {n} of {tries}); trying again in {:.1} s",
                        f.error,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(f) => return Err(f.error),
            }
        }
        unreachable!("the last try returns")
    }

    fn backoff(&self, failures: u32) -> Duration {
        let wait = self
            .retry
            .base
            .saturating_mul(1 << failures.saturating_sub(1).min(16));
        let jitter = rand::rng().random_range(0.0..0.25);
        wait.mul_f64(1.0 + jitter)
    }

    async fn send(&self, url: &str) -> Result<reqwest::Response, Failure> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| transport(url, &e))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(FetchError::NotFound {
                url: url.to_string(),
            }
            .into());
        }
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Failure {
                error: FetchError::Status {
                    url: url.to_string(),
                    status,
                },
                retry_after,
            });
        }
        Ok(response)
    }

    async fn get_text(&self, url: &str) -> Result<String, Failure> {
        let response = self.send(url).await?;
        response.text().await.map_err(|e| transport(url, &e))
    }

    async fn get_file(&self, url: &str, dest: &Path) -> Result<u64, Failure> {
        let mut response = self.send(url).await?;
        let html = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html"));
        if html {
            return Err(FetchError::Html {
                url: url.to_string(),
            }
            .into());
        }
        let expected = response.content_length();
        let write_err = |source| FetchError::Write {
            url: url.to_string(),
            file: dest.display().to_string(),
            source,
        };
        let mut file = std::fs::File::create(dest).map_err(write_err)?;
        let mut got = 0u64;
        let mut first = true;
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, &e))? {
            if first && looks_like_html(&chunk) {
                return Err(FetchError::Html {
                    url: url.to_string(),
                }
                .into());
            }
            first = false;
            file.write_all(&chunk).map_err(write_err)?;
            got += chunk.len() as u64;
        }
        file.sync_all().map_err(write_err)?;
        if let Some(expected) = expected
            && got != expected
        {
            return Err(FetchError::Cut {
                url: url.to_string(),
                got,
                expected,
            }
            .into());
        }
        Ok(got)
    }
}

/// An MRT file (plain, gzip or bzip2) never starts with `<`; an HTML page does, after
/// blanks.
fn looks_like_html(first: &[u8]) -> bool {
    first
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<')
}

fn transport(url: &str, e: &reqwest::Error) -> Failure {
    // reqwest's own message is terse; its sources say what happened (refused, reset, cut).
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    FetchError::Transport {
        url: url.to_string(),
        detail,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_told_from_mrt() {
        assert!(looks_like_html(b"  \n<!DOCTYPE html>"));
        assert!(looks_like_html(b"<html>"));
        assert!(!looks_like_html(&[0x1f, 0x8b, 0x08]));
        assert!(!looks_like_html(b"BZh91AY&SY"));
        assert!(!looks_like_html(&[0, 0, 0, 0, 0, 13]));
    }

    #[test]
    fn user_agent_names_nkpath_and_its_project() {
        assert!(USER_AGENT.starts_with("nkpath-collector/"));
        assert!(USER_AGENT.contains("https://"));
    }
}
