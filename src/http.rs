//! The HTTP client both Weiban and the robots are reached with, and transport errors told
//! without the URL (which carries an access token or a robot key).

use std::time::Duration;

/// Makes ring the process's rustls crypto provider, for reqwest and lettre alike (neither
/// brings its own: one provider linked, not two). Idempotent. A program that links this crate
/// and builds its own reqwest client (the tests, the bench) calls it first.
pub fn use_ring() {
    // An error only says a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client with churn-alert's user agent and a whole-request `timeout`.
pub(crate) fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    builder(timeout).build()
}

/// The builder [`client`] builds, for a client that needs one more setting.
pub(crate) fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    use_ring();
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("churn-alert/", env!("CARGO_PKG_VERSION")));
    match shared_tls() {
        Some(tls) => builder.tls_backend_preconfigured(tls),
        None => builder,
    }
}

/// The TLS settings every client shares: ring, and the system's roots through the platform
/// verifier, as reqwest would build them, but once per process. Built per client, the roots
/// cost about a third of a megabyte each, and a daemon of 200 corps has 400 clients. `None`
/// (the verifier cannot be made) leaves each client to build its own, which then says why.
fn shared_tls() -> Option<rustls::ClientConfig> {
    static TLS: std::sync::OnceLock<Option<rustls::ClientConfig>> = std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).ok()?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
            .with_no_client_auth();
        Some(config)
    })
    .clone()
}

/// What went wrong, with its causes, never the URL: "timed out (…)".
pub(crate) fn describe(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "connection broke while reading the answer"
    } else {
        "request failed"
    };
    let err = err.without_url();
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    format!("{kind} ({})", crate::secret::redact_url(&detail))
}
