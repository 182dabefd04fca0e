//! TLS end to end with a CA generated in the test: amqps with lapin and with the `rmq`
//! binary, server verification (and `--insecure`), client certificates, a plain-TCP peer on the
//! TLS port, the management API over https, and bad certificate files at start-up.

use crate::cli_support::{code, run, stderr};
use crate::support::amqp::bounded;
use crate::support::{WAIT, rmq, run_bounded, unique};
use crate::tls_support::Pki;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::io::{Read, Write};

/// lapin over amqps, trusting the test CA.
async fn lapin_tls(url: &str, ca_pem: &str) -> lapin::Result<Connection> {
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: Some(ca_pem.to_string()),
    };
    bounded(
        "amqps connect",
        Connection::connect_with_config(
            url,
            ConnectionProperties::default(),
            tls,
            lapin::runtime::default_runtime()?,
        ),
    )
    .await
}

/// Publish one message to a fresh queue and consume it back on `conn`.
async fn round_trip(conn: &Connection) {
    round_trip_body(conn, b"over tls").await;
}

/// The same with a body of our choosing.
async fn round_trip_body(conn: &Connection, body: &[u8]) {
    let q = unique("tls-lapin");
    let ch = bounded("channel", conn.create_channel()).await.unwrap();
    bounded(
        "declare",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    bounded(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    bounded(
        "publish",
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        ),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut consumer = bounded(
        "consume",
        ch.basic_consume(
            q.as_str().into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let delivery = bounded("delivery", consumer.next())
        .await
        .expect("a delivery")
        .unwrap();
    assert!(delivery.data == body, "the body came back changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapin_publishes_and_consumes_over_amqps() {
    let pki = Pki::new();
    let broker = pki.broker(false);
    let conn = lapin_tls(&broker.amqps_url(), &pki.ca_pem)
        .await
        .expect("amqps connection");
    round_trip(&conn).await;
    // Plain AMQP keeps working beside amqps, as RabbitMQ's two listeners do.
    let plain = bounded(
        "plain connect",
        Connection::connect(&broker.url(), ConnectionProperties::default()),
    )
    .await
    .unwrap();
    round_trip(&plain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_crosses_tls_both_ways() {
    // Bigger than the socket buffers, so the broker's TLS writer meets a full socket:
    // records rustls holds back then must still be flushed out (timing-dependent, so a
    // guard rather than a proof).
    let pki = Pki::new();
    let broker = pki.broker(false);
    let conn = lapin_tls(&broker.amqps_url(), &pki.ca_pem).await.unwrap();
    let body: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    round_trip_body(&conn, &body).await;
}

#[test]
fn rmq_send_and_receive_over_amqps_with_the_ca() {
    let pki = Pki::new();
    let broker = pki.broker(false);
    let url = broker.amqps_url();
    let ca = pki.ca.to_str().unwrap();
    let q = unique("tls-cli");
    let out = run(
        &url,
        &["--tls-ca-cert-file", ca, "send", &q, "hello tls"],
        None,
    );
    assert_eq!(code(&out), 0, "send: {}", stderr(&out));
    let out = run(
        &url,
        &["--tls-ca-cert-file", ca, "receive", &q, "--count", "1"],
        None,
    );
    assert_eq!(code(&out), 0, "receive: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello tls");

    // The same CA from a profile of the config file.
    let config = pki.dir.join("config.toml");
    std::fs::write(
        &config,
        format!("[profiles.tls]\nurl = \"{url}\"\ntls_ca_cert = \"{ca}\"\n"),
    )
    .unwrap();
    let mut cmd = rmq();
    cmd.arg("--config")
        .arg(&config)
        .args(["--profile", "tls", "send", &q, "via profile"]);
    let out = run_bounded(cmd, None, WAIT);
    assert_eq!(code(&out), 0, "send with a profile: {}", stderr(&out));
}

#[test]
fn an_untrusted_broker_is_refused_unless_insecure() {
    let pki = Pki::new();
    let broker = pki.broker(false);
    let url = broker.amqps_url();
    let q = unique("tls-insecure");
    let out = run(&url, &["send", &q, "x"], None);
    assert_eq!(code(&out), 77, "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not trusted") && err.contains("--tls-ca-cert-file"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let out = run(&url, &["--insecure", "send", &q, "x"], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("warning"), "{}", stderr(&out));
    let out = run(&url, &["--insecure", "receive", &q, "--count", "1"], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "x");
}

#[test]
fn peer_verification_needs_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let broker = pki.broker(true);
    let url = broker.amqps_url();
    let ca = pki.ca.to_str().unwrap();
    let q = unique("tls-peer");
    let out = run(&url, &["--tls-ca-cert-file", ca, "send", &q, "x"], None);
    assert_eq!(
        code(&out),
        77,
        "a client without a certificate: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--tls-cert-file"), "{}", stderr(&out));

    let with_cert = |args: &[&str]| {
        let mut all = vec![
            "--tls-ca-cert-file",
            ca,
            "--tls-cert-file",
            pki.client_cert.to_str().unwrap(),
            "--tls-key-file",
            pki.client_key.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        run(&url, &all, None)
    };
    let out = with_cert(&["send", &q, "signed"]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let out = with_cert(&["receive", &q, "--count", "1"]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "signed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_amqp_on_the_tls_port_only_closes_that_socket() {
    let pki = Pki::new();
    let broker = pki.broker(false);
    let tls_addr = broker.tls_addr.unwrap();
    let stray = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(tls_addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
        // The broker answers with a TLS alert at most, then closes: read to the end.
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        sink
    });
    let answer = bounded(
        "stray socket closed",
        tokio::task::spawn_blocking(move || stray.join()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!answer.starts_with(b"AMQP"), "no AMQP on the TLS port");
    let conn = lapin_tls(&broker.amqps_url(), &pki.ca_pem).await.unwrap();
    round_trip(&conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_speaks_https() {
    let pki = Pki::new();
    let broker = pki.broker(false);
    let client = pki.https_client();
    let resp = bounded(
        "GET /api/overview",
        client
            .get(format!("{}/api/overview", broker.https_url()))
            .basic_auth("guest", Some("guest"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = bounded("body", resp.json()).await.unwrap();
    let listeners = body["listeners"].as_array().unwrap();
    let ssl = listeners
        .iter()
        .find(|l| l["protocol"] == "amqp/ssl")
        .expect("an amqp/ssl listener");
    assert_eq!(ssl["port"], broker.tls_addr.unwrap().port());
    assert!(listeners.iter().any(|l| l["protocol"] == "https"));

    // Connections list `ssl` by the listener they came through.
    let _tls = lapin_tls(&broker.amqps_url(), &pki.ca_pem)
        .await
        .expect("amqps connection");
    let _plain = bounded(
        "plain connect",
        Connection::connect(&broker.url(), ConnectionProperties::default()),
    )
    .await
    .unwrap();
    let conns: serde_json::Value = bounded(
        "GET /api/connections",
        client
            .get(format!("{}/api/connections", broker.https_url()))
            .basic_auth("guest", Some("guest"))
            .send(),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mut ssl: Vec<(u64, bool)> = conns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["port"].as_u64().unwrap(), c["ssl"].as_bool().unwrap()))
        .collect();
    ssl.sort();
    let mut want = vec![
        (u64::from(broker.tls_addr.unwrap().port()), true),
        (u64::from(broker.addr.port()), false),
    ];
    want.sort();
    assert_eq!(ssl, want);

    // The CLI's management client trusts the same CA flag as its AMQP one.
    let out = tokio::task::spawn_blocking({
        let (url, api, ca) = (
            broker.amqps_url(),
            broker.https_url(),
            pki.ca.to_str().unwrap().to_string(),
        );
        move || {
            run(
                &url,
                &["--tls-ca-cert-file", &ca, "overview", "--api-url", &api],
                None,
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
}

#[test]
fn serve_with_an_unreadable_certificate_fails_with_one_line() {
    let pki = Pki::new();
    let missing = pki.dir.join("missing.pem");
    let mut cmd = rmq();
    cmd.args(["serve", "--port", "0", "--mgmt-port", "0", "--in-memory"])
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&pki.server_key);
    let out = run_bounded(cmd, None, WAIT);
    assert_eq!(code(&out), 65, "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("missing.pem"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    // A key that is not a key.
    let mut cmd = rmq();
    cmd.args(["serve", "--port", "0", "--mgmt-port", "0", "--in-memory"])
        .arg("--tls-cert")
        .arg(&pki.server_cert)
        .arg("--tls-key")
        .arg(&pki.server_cert);
    let out = run_bounded(cmd, None, WAIT);
    assert_eq!(code(&out), 65, "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("private key"), "{}", stderr(&out));
}

#[test]
fn an_amqp_url_for_the_tls_port_points_at_amqps() {
    let pki = Pki::new();
    let broker = pki.broker(false);
    let url = format!("amqp://guest:guest@{}/%2F", broker.tls_addr.unwrap());
    let out = run(&url, &["send", &unique("tls-wrong-scheme"), "x"], None);
    assert_eq!(code(&out), 69, "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("amqps://"), "{}", stderr(&out));
}
