//! HTTP for fetching packages: ureq with rustls, the standard proxy
//! variables, timeouts on connecting and on stalled reads, and retries with
//! exponential backoff on server errors (5xx, 429), resets and timeouts.
//!
//! Proxies: `https_proxy` (or `HTTPS_PROXY`) for https URLs, `http_proxy`
//! (or `HTTP_PROXY`) for http ones, `all_proxy` (`ALL_PROXY`) for both when
//! the specific one is unset; `no_proxy` (`NO_PROXY`) lists hosts that are
//! reached directly (`*`, exact names, or domain suffixes such as
//! `.example.com`). Redirects are followed up to a limit, so a loop ends
//! as an error; a 206 answer to a whole-file request is never accepted.

use super::error::Failure;
use super::resolve::CachingResolver;
use std::io::Read;
use std::time::Duration;
use ureq::Agent;
use ureq::unversioned::transport::DefaultConnector;

/// Timeouts, retries and parallelism.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// A read that waits longer than this for the next bytes fails.
    pub stall_timeout: Duration,
    /// Attempts per URL for errors worth retrying (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each further one.
    pub backoff: Duration,
    /// Downloads (or checks) running at once.
    pub parallel: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(30),
            attempts: 3,
            backoff: Duration::from_millis(500),
            parallel: 4,
        }
    }
}

/// Agents for direct and proxied connections, chosen per URL.
pub struct Http {
    settings: HttpSettings,
    direct: Agent,
    via_http_proxy: Option<Agent>,
    via_https_proxy: Option<Agent>,
    no_proxy: Vec<String>,
}

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

impl Http {
    /// A client configured from `settings` and the proxy variables. A proxy
    /// variable that is not a usable URL is an error naming it.
    pub fn new(settings: HttpSettings) -> Result<Http, String> {
        let agent = |proxy: Option<ureq::Proxy>| -> Agent {
            let config = Agent::config_builder()
                .proxy(proxy)
                .timeout_connect(Some(settings.connect_timeout))
                .timeout_per_read(Some(settings.stall_timeout))
                .timeout_recv_response(Some(settings.stall_timeout * 2))
                .http_status_as_error(false)
                .max_redirects(8)
                .user_agent(concat!("imago/", env!("CARGO_PKG_VERSION")))
                .build();
            Agent::with_parts(config, DefaultConnector::new(), CachingResolver::default())
        };
        let proxied = |specific: &[&str]| -> Result<Option<Agent>, String> {
            let all = ["all_proxy", "ALL_PROXY"];
            let Some(url) = env_any(specific).or_else(|| env_any(&all)) else {
                return Ok(None);
            };
            let proxy = ureq::Proxy::new(&url)
                .map_err(|e| format!("proxy `{url}` (from the environment): {e}"))?;
            Ok(Some(agent(Some(proxy))))
        };
        let no_proxy = env_any(&["no_proxy", "NO_PROXY"])
            .map(|v| {
                v.split([',', ' '])
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Http {
            via_http_proxy: proxied(&["http_proxy", "HTTP_PROXY"])?,
            via_https_proxy: proxied(&["https_proxy", "HTTPS_PROXY"])?,
            direct: agent(None),
            no_proxy,
            settings,
        })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// The agent for `url`: direct, or through the proxy its scheme's
    /// variables name.
    pub fn agent_for(&self, url: &str) -> &Agent {
        let (proxied, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (&self.via_https_proxy, rest)
        } else {
            (
                &self.via_http_proxy,
                url.strip_prefix("http://").unwrap_or(url),
            )
        };
        let host = host_of(rest);
        match proxied {
            Some(agent) if !bypasses_proxy(&self.no_proxy, &host) => agent,
            _ => &self.direct,
        }
    }

    /// GETs `url` and hands the body to `consume`, which must read it all
    /// and judge it. Retried (from the start, with a fresh `consume` call)
    /// on errors worth retrying.
    pub fn get<T>(
        &self,
        url: &str,
        mut consume: impl FnMut(&mut dyn Read) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        self.retrying(|| {
            let response = self
                .agent_for(url)
                .get(url)
                .call()
                .map_err(transport_failure)?;
            check_status(response.status().as_u16())?;
            let mut body = response.into_body().into_reader();
            consume(&mut body)
        })
    }

    /// HEADs `url`: `Ok(Some(length))` when it is there (the length when
    /// the server says), `Ok(None)` when the server says it is not.
    pub fn head(&self, url: &str) -> Result<Option<Option<u64>>, Failure> {
        let result = self.retrying(|| {
            let response = self
                .agent_for(url)
                .head(url)
                .call()
                .map_err(transport_failure)?;
            check_status(response.status().as_u16())?;
            let length = response
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            // Reading the (empty) body to its end returns the connection
            // to the pool; otherwise every request connects (and resolves
            // the host name) again.
            let _ = std::io::copy(
                &mut response.into_body().into_reader().take(64 * 1024),
                &mut std::io::sink(),
            );
            Ok(length)
        });
        match result {
            Ok(len) => Ok(Some(len)),
            Err(Failure::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Runs `once` until it succeeds, fails in a way not worth retrying,
    /// or the attempts are spent, waiting longer before each new attempt.
    pub fn retrying<T>(&self, mut once: impl FnMut() -> Result<T, Failure>) -> Result<T, Failure> {
        let mut wait = self.settings.backoff;
        let mut attempt = 1;
        loop {
            match once() {
                Err(f) if worth_retrying(&f) && attempt < self.settings.attempts.max(1) => {
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn check_status(code: u16) -> Result<(), Failure> {
    match code {
        200 => Ok(()),
        206 => Err(Failure::Partial),
        404 | 410 => Err(Failure::NotFound),
        other => Err(Failure::Status(other)),
    }
}

fn worth_retrying(f: &Failure) -> bool {
    match f {
        Failure::Status(code) => *code >= 500 || *code == 429,
        Failure::Transport(_) | Failure::Truncated { .. } => true,
        Failure::NotFound
        | Failure::Partial
        | Failure::TooLong { .. }
        | Failure::DigestMismatch { .. }
        | Failure::Local(_) => false,
    }
}

/// The failure a transport error of ureq is.
pub fn transport_failure(e: ureq::Error) -> Failure {
    match e {
        ureq::Error::TooManyRedirects => Failure::Transport("too many redirects".into()),
        ureq::Error::Timeout(t) => Failure::Transport(format!("timed out ({t})")),
        ureq::Error::StatusCode(code) => Failure::Status(code),
        other => Failure::Transport(other.to_string()),
    }
}

/// The host of `rest` (a URL without its scheme), lowercase, without port
/// or credentials.
fn host_of(rest: &str) -> String {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    host.to_ascii_lowercase()
}

/// Whether `no_proxy` (entries as in the variable) exempts `host`.
fn bypasses_proxy(no_proxy: &[String], host: &str) -> bool {
    no_proxy.iter().any(|entry| {
        let entry = entry.split(':').next().unwrap_or(entry);
        let suffix = entry.trim_start_matches('*').trim_start_matches('.');
        entry == "*"
            || host == suffix
            || (!suffix.is_empty() && host.ends_with(&format!(".{suffix}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_found_in_urls() {
        assert_eq!(host_of("deb.debian.org/debian/x"), "deb.debian.org");
        assert_eq!(host_of("user:pw@Cache.Example:8080/x"), "cache.example");
        assert_eq!(host_of("[::1]:80/x"), "::1");
    }

    #[test]
    fn no_proxy_matches_names_and_suffixes() {
        let list: Vec<String> = ["localhost", ".corp.example", "10.0.0.1:3128"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(bypasses_proxy(&list, "localhost"));
        assert!(bypasses_proxy(&list, "cache.corp.example"));
        assert!(bypasses_proxy(&list, "corp.example"));
        assert!(bypasses_proxy(&list, "10.0.0.1"));
        assert!(!bypasses_proxy(&list, "notcorp.example"));
        assert!(!bypasses_proxy(&list, "deb.debian.org"));
        assert!(bypasses_proxy(&["*".to_string()], "anything"));
    }
}
