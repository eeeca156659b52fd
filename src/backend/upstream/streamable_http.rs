//! The Streamable HTTP client transport: rmcp's, with the configured headers, re-initializing
//! a session the server expired.

pub(super) fn transport(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<rmcp::transport::StreamableHttpClientTransport<reqwest::Client>, String> {
    use reqwest::header::{HeaderName, HeaderValue};
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut custom = std::collections::HashMap::new();
    for (name, value) in headers {
        let name =
            HeaderName::try_from(name.as_str()).map_err(|e| format!("header `{name}`: {e}"))?;
        // The value is a secret: the error names the header, never its value.
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|_| format!("header `{name}` has a value that is not valid in HTTP"))?;
        custom.insert(name, value);
    }
    let config = StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(custom)
        .reinit_on_expired_session(true);
    Ok(rmcp::transport::StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        config,
    ))
}
