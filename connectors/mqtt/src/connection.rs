//! Broker addresses, TLS and connection options shared by source and sink.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::{ConnectionError, MqttOptions, StateError};
use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::error::{MqttError, Result};

/// The largest packet MQTT allows (256 MiB − 1): we accept whatever the
/// broker accepted, because an MQTT 5 broker silently discards messages
/// larger than the client's Maximum Packet Size.
pub(crate) const MAX_PACKET_SIZE: u32 = 268_435_455;

/// TLS settings for `mqtts://` brokers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) that signed the broker's
    /// certificate. Default: the system's root certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS. Default: none.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1) of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

/// A parsed broker URL: `mqtt://host[:port]` (or `tcp://`, default port
/// 1883) and `mqtts://host[:port]` (or `ssl://`, default port 8883).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BrokerUrl {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl BrokerUrl {
    pub(crate) fn parse(url: &str) -> Result<BrokerUrl> {
        let bad = |why: &str| MqttError::Config(format!("broker url {url:?}: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected mqtt://host[:port] or mqtts://host[:port]"))?;
        let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => (false, 1883),
            "mqtts" | "ssl" => (true, 8883),
            other => return Err(bad(&format!("unknown scheme {other:?} (mqtt or mqtts)"))),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad("only scheme, host and port are allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("junk after ']'")),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("port is not a number"))?,
            None => default_port,
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

/// Everything needed to open one MQTT 5 connection.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint<'a> {
    pub(crate) url: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) username: Option<&'a str>,
    pub(crate) password: Option<&'a str>,
    pub(crate) tls: Option<&'a TlsConfig>,
    pub(crate) keep_alive_secs: u64,
    pub(crate) connect_timeout_secs: u64,
    pub(crate) session_expiry_secs: u32,
    pub(crate) clean_start: bool,
}

impl Endpoint<'_> {
    /// rumqttc options for this endpoint (the TLS files are read here, so a
    /// bad file fails at construction, not at the first reconnect).
    pub(crate) fn options(&self) -> Result<MqttOptions> {
        if self.client_id.is_empty() {
            return Err(MqttError::Config("client_id must not be empty".into()));
        }
        if self.keep_alive_secs < 5 {
            // rumqttc asserts (panics) below 5 s.
            return Err(MqttError::Config(
                "keep_alive_secs must be at least 5".into(),
            ));
        }
        let url = BrokerUrl::parse(self.url)?;
        let mut o = MqttOptions::new(self.client_id, url.host.clone(), url.port);
        o.set_keep_alive(Duration::from_secs(self.keep_alive_secs));
        o.set_clean_start(self.clean_start);
        o.set_connection_timeout(self.connect_timeout_secs.max(1));
        if self.session_expiry_secs > 0 {
            o.set_session_expiry_interval(Some(self.session_expiry_secs));
        }
        o.set_max_packet_size(Some(MAX_PACKET_SIZE));
        match (self.username, self.password) {
            (Some(u), p) => {
                o.set_credentials(u, p.unwrap_or(""));
            }
            (None, Some(_)) => {
                return Err(MqttError::Config("password given without username".into()));
            }
            (None, None) => {}
        }
        if url.tls {
            let default = TlsConfig::default();
            let cfg = rustls_config(self.tls.unwrap_or(&default))?;
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(cfg))));
        } else if self.tls.is_some_and(|t| *t != TlsConfig::default()) {
            return Err(MqttError::Config(format!(
                "tls settings given for the plain-text broker url {:?} (use mqtts://)",
                self.url
            )));
        }
        Ok(o)
    }
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| MqttError::Tls {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| MqttError::Tls {
            path: path.to_owned(),
            message: format!("not PEM certificates: {e}"),
        })?;
    if certs.is_empty() {
        return Err(MqttError::Tls {
            path: path.to_owned(),
            message: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|e| MqttError::Tls {
            path: path.to_owned(),
            message: format!("not a PEM private key: {e}"),
        })?
        .ok_or_else(|| MqttError::Tls {
            path: path.to_owned(),
            message: "no PRIVATE KEY block found".into(),
        })
}

/// A rustls client configuration with an explicit crypto provider (aws-lc-rs).
pub(crate) fn rustls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(ca) => {
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| MqttError::Tls {
                    path: ca.clone(),
                    message: format!("unusable CA certificate: {e}"),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "mqtt: reading a system root certificate failed");
            }
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(MqttError::Config(
                    "mqtts:// without tls.ca_file and no system root certificates found".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Internal(format!("rustls protocol versions: {e}")))?
        .with_root_certificates(roots);
    match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key_der = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| MqttError::Tls {
                    path: key.clone(),
                    message: format!("does not match {}: {e}", cert.display()),
                })
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(MqttError::Config(
            "tls.client_cert_file and tls.client_key_file go together".into(),
        )),
    }
}

/// Whether a connection error can be fixed by trying again.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The network, or a broker that is restarting: retry with backoff.
    Transient(String),
    /// Credentials, certificates, protocol: retrying cannot help.
    Fatal(String),
}

/// Sorts an eventloop error into transient and fatal, with a message that
/// says what to fix for the fatal ones.
pub(crate) fn classify(err: &ConnectionError) -> Failure {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    if let Some(message) = find_tls_failure(err) {
        return Failure::Fatal(message);
    }
    match err {
        ConnectionError::ConnectionRefused(code)
        | ConnectionError::MqttState(StateError::ConnFail { reason: code }) => match code {
            C::ServerUnavailable
            | C::ServiceUnavailable
            | C::ServerBusy
            | C::QuotaExceeded
            | C::ConnectionRateExceeded
            | C::UnspecifiedError
            | C::ImplementationSpecificError => {
                Failure::Transient(format!("connection refused: {code:?}"))
            }
            C::BadUserNamePassword | C::NotAuthorized | C::BadAuthenticationMethod => {
                Failure::Fatal(format!(
                    "connection refused: {code:?} (check username/password or the client certificate)"
                ))
            }
            other => Failure::Fatal(format!("connection refused: {other:?}")),
        },
        ConnectionError::Tls(e) => Failure::Fatal(format!("TLS: {e}")),
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => {
            use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as D;
            let msg = format!(
                "broker disconnected: {reason_code:?}{}",
                reason_string
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            );
            match reason_code {
                D::NotAuthorized | D::TopicFilterInvalid => Failure::Fatal(msg),
                // Session taken over by another connection with our client
                // id: retrying would fight it forever.
                D::SessionTakenOver => Failure::Fatal(format!(
                    "{msg}: another client connected with the same client_id"
                )),
                _ => Failure::Transient(msg),
            }
        }
        other => Failure::Transient(other.to_string()),
    }
}

/// A TLS failure anywhere in the error's chain (tokio-rustls reports them
/// as I/O errors, which rumqttc wraps once or twice), as a message saying
/// what to fix.
fn find_tls_failure(err: &ConnectionError) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(tls_message(r));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(tls_message(r));
        }
        cur = e.source();
    }
    // Not every wrapper names its source: the variants known to carry I/O.
    let io = match err {
        ConnectionError::Io(e)
        | ConnectionError::MqttState(StateError::Io(e))
        | ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::v5::mqttbytes::Error::Io(e),
        )) => e,
        _ => return None,
    };
    io.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .map(tls_message)
}

fn tls_message(inner: &rustls::Error) -> String {
    let hint = match inner {
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired)
        | rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure) => {
            " (the broker requires a client certificate: set tls.client_cert_file and tls.client_key_file)"
        }
        rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA | rustls::AlertDescription::BadCertificate,
        ) => " (the broker rejected the client certificate)",
        rustls::Error::InvalidCertificate(_) => {
            " (the broker's certificate is not trusted: check tls.ca_file and the host name)"
        }
        _ => "",
    };
    format!("TLS: {inner}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1883").expect("parses");
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 1883));
        let u = BrokerUrl::parse("mqtts://broker.example").expect("parses");
        assert_eq!((u.tls, u.port), (true, 8883));
        let u = BrokerUrl::parse("ssl://h:9/").expect("parses");
        assert_eq!((u.tls, u.host.as_str(), u.port), (true, "h", 9));
        let u = BrokerUrl::parse("tcp://[::1]:1884").expect("parses");
        assert_eq!((u.host.as_str(), u.port), ("::1", 1884));
        let u = BrokerUrl::parse("mqtt://[::1]").expect("parses");
        assert_eq!(u.port, 1883);
        for bad in [
            "127.0.0.1:1883",
            "http://h",
            "mqtt://",
            "mqtt://h:x",
            "mqtt://h:70000",
            "mqtt://u@h",
            "mqtt://h/path",
            "mqtt://[::1",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    fn endpoint<'a>(url: &'a str, tls: Option<&'a TlsConfig>) -> Endpoint<'a> {
        Endpoint {
            url,
            client_id: "c",
            username: None,
            password: None,
            tls,
            keep_alive_secs: 30,
            connect_timeout_secs: 5,
            session_expiry_secs: 60,
            clean_start: false,
        }
    }

    #[test]
    fn options_reject_bad_tls_settings() {
        let half = TlsConfig {
            client_cert_file: Some("/nonexistent.crt".into()),
            ..TlsConfig::default()
        };
        assert!(matches!(
            endpoint("mqtt://h", Some(&half)).options(),
            Err(MqttError::Config(_))
        ));
        let missing = TlsConfig {
            ca_file: Some("/nonexistent/ca.crt".into()),
            ..TlsConfig::default()
        };
        match endpoint("mqtts://h", Some(&missing)).options() {
            Err(MqttError::Tls { path, .. }) => {
                assert_eq!(path, PathBuf::from("/nonexistent/ca.crt"))
            }
            other => panic!("expected a TLS file error, got {other:?}"),
        }
        let opts = endpoint("mqtt://h:1", None)
            .options()
            .expect("plain options");
        assert_eq!(opts.broker_address(), ("h".to_owned(), 1));
        assert!(!opts.clean_start());
        assert_eq!(opts.session_expiry_interval(), Some(60));
    }

    #[test]
    fn refusals_for_credentials_are_fatal_and_unavailability_transient() {
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
        assert!(matches!(
            classify(&ConnectionError::ConnectionRefused(C::NotAuthorized)),
            Failure::Fatal(_)
        ));
        assert!(matches!(
            classify(&ConnectionError::ConnectionRefused(C::ServerUnavailable)),
            Failure::Transient(_)
        ));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            classify(&ConnectionError::Io(refused)),
            Failure::Transient(_)
        ));
        let alert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        match classify(&ConnectionError::Io(alert)) {
            Failure::Fatal(m) => assert!(m.contains("client certificate"), "{m}"),
            other => panic!("{other:?}"),
        }
        // What rumqttc actually returns when mosquitto wants a certificate.
        let alert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        let wrapped = ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::v5::mqttbytes::Error::Io(alert),
        ));
        assert!(matches!(classify(&wrapped), Failure::Fatal(_)));
    }
}
