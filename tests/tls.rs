//! Upstream TLS is verified: the certificate must chain to a trusted root and name the host
//! (SNI). A TLS front for the mock upstream, with a throwaway CA the gateway trusts through
//! `SSL_CERT_FILE`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Gateway, SERVER};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// A CA, and a TLS front on 127.0.0.1:0 whose certificate (signed by that CA) names `san`;
/// every connection is piped to `backend`.
type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

async fn tls_front(backend: SocketAddr, ca: &Ca, san: &str) -> SocketAddr {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![san.to_string()]).unwrap();
    params.subject_alt_names = vec![match san.parse() {
        Ok(ip) => rcgen::SanType::IpAddress(ip),
        Err(_) => rcgen::SanType::DnsName(san.try_into().unwrap()),
    }];
    let cert = params.signed_by(&key, ca).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

fn ca() -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ezrouter test CA");
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

#[tokio::test]
async fn upstream_certificates_are_verified_against_the_host_name() {
    let mock = common::mock().await;
    let ca = ca();
    let right = tls_front(mock.addr, &ca, "127.0.0.1").await;
    let wrong_name = tls_front(mock.addr, &ca, "elsewhere.test").await;
    let stranger = tls_front(mock.addr, &self::ca(), "127.0.0.1").await;

    let config = format!(
        r#"{SERVER}
[providers.good]
kind = "openai"
base_url = "https://{right}/v1"
keys = ["ok"]
[providers.misnamed]
kind = "openai"
base_url = "https://{wrong_name}/v1"
keys = ["ok"]
[providers.untrusted]
kind = "openai"
base_url = "https://{stranger}/v1"
keys = ["ok"]
[models.good]
routes = [{{ provider = "good" }}]
[models.misnamed]
routes = [{{ provider = "misnamed" }}]
[models.untrusted]
routes = [{{ provider = "untrusted" }}]
[[keys]]
id = "t"
secret = "k"
"#
    );
    let ca_file = std::env::temp_dir().join(format!("ezrouter-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let gw = Gateway::start_with_env(&config, &[("SSL_CERT_FILE", ca_file.to_str().unwrap())]);
    let mut c = gw.client();
    let ask = |model: &str| json!({"model": model, "messages":[{"role":"user","content":"hi"}]});

    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", "Bearer k")],
            &ask("good"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
    for model in ["misnamed", "untrusted"] {
        let r = c
            .post_json(
                "/v1/chat/completions",
                &[("authorization", "Bearer k")],
                &ask(model),
            )
            .await;
        assert_eq!(r.status, 502, "{model}: {}", r.text());
    }
    std::fs::remove_file(ca_file).unwrap();
}
