//! `docker-compose.yml` is checked, not run (no Docker engine here): the databases are set up
//! for change data capture, opslive's environment and mounted configuration are what opslive
//! itself accepts, and every file it mounts exists in the repository.

use std::collections::BTreeMap;

use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let text = std::fs::read_to_string("docker-compose.yml").unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn service<'a>(doc: &'a Yaml, name: &str) -> &'a Yaml {
    let s = &doc["services"][name];
    assert!(!s.is_badvalue(), "service {name} is defined");
    s
}

fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(items) => items.iter().map(|i| i.as_str().expect("a string item").to_string()).collect(),
        Yaml::String(s) => s.split_whitespace().map(String::from).collect(),
        other => panic!("expected a list or a string, got {other:?}"),
    }
}

/// A database command line's `--name=value` / `-c name=value` settings, `-` and `_` alike.
fn settings(args: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let setting = if a == "-c" { it.next().cloned() } else { a.strip_prefix("--").map(String::from) };
        if let Some(s) = setting {
            let (k, v) = s.split_once('=').unwrap_or((&s, ""));
            out.insert(k.replace('-', "_"), v.to_string());
        }
    }
    out
}

fn environment(s: &Yaml) -> BTreeMap<String, String> {
    match &s["environment"] {
        Yaml::Hash(h) => h
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    other => panic!("environment value {other:?}"),
                };
                (k.as_str().unwrap().to_string(), v)
            })
            .collect(),
        Yaml::BadValue => BTreeMap::new(),
        other => panic!("environment as a map, got {other:?}"),
    }
}

/// `host:container[:mode]` bind mounts of a service (named volumes skipped).
fn bind_mounts(s: &Yaml) -> Vec<(String, String)> {
    strings(&s["volumes"])
        .into_iter()
        .filter(|v| v.starts_with("./"))
        .map(|v| {
            let mut parts = v.split(':');
            (parts.next().unwrap().to_string(), parts.next().expect("a container path").to_string())
        })
        .collect()
}

#[test]
fn postgres_has_logical_replication_and_the_fixtures() {
    let doc = compose();
    let pg = service(&doc, "postgres");
    assert!(pg["image"].as_str().unwrap().starts_with("postgres:15"));
    let s = settings(&strings(&pg["command"]));
    assert_eq!(s.get("wal_level").map(String::as_str), Some("logical"));
    assert!(s["max_replication_slots"].parse::<u32>().unwrap() >= 2);
    assert!(s["max_wal_senders"].parse::<u32>().unwrap() >= 2);
    let mounts = bind_mounts(pg);
    for (host, container) in &mounts {
        assert!(std::path::Path::new(host).is_file(), "{host} exists");
        assert!(container.starts_with("/docker-entrypoint-initdb.d/"), "{container}");
    }
    // Schema before seed: the entrypoint runs them in name order.
    let order: Vec<&str> = mounts.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(order, ["./fixtures/postgres/schema.sql", "./fixtures/postgres/seed.sql"]);
    let mut names: Vec<&str> = mounts.iter().map(|(_, c)| c.as_str()).collect();
    let unsorted = names.clone();
    names.sort();
    assert_eq!(names, unsorted);
    assert_eq!(environment(pg)["POSTGRES_DB"], "shop");
}

#[test]
fn mariadb_writes_a_full_row_binlog() {
    let doc = compose();
    let db = service(&doc, "mariadb");
    assert!(db["image"].as_str().unwrap().starts_with("mariadb:10.11"));
    let s = settings(&strings(&db["command"]));
    assert!(s.contains_key("log_bin"), "binary log on: {s:?}");
    assert_eq!(s["binlog_format"], "ROW");
    assert_eq!(s["binlog_row_image"], "FULL");
    assert_eq!(s["binlog_row_metadata"], "FULL");
    assert!(s["server_id"].parse::<u32>().unwrap() > 0);
    // Compressed row events are skipped by binlog readers: they would lose rows silently.
    assert_ne!(s.get("log_bin_compress").map(String::as_str), Some("ON"));
    // The helpdesk fixtures, schema before seed, in the database the example configuration reads.
    let mounts = bind_mounts(db);
    let order: Vec<&str> = mounts.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(order, ["./fixtures/mariadb/schema.sql", "./fixtures/mariadb/seed.sql"]);
    let mut names: Vec<&str> = mounts.iter().map(|(_, c)| c.as_str()).collect();
    let unsorted = names.clone();
    names.sort();
    assert_eq!(names, unsorted);
    assert!(names.iter().all(|c| c.starts_with("/docker-entrypoint-initdb.d/")));
    assert_eq!(environment(db)["MARIADB_DATABASE"], "helpdesk");
}

#[test]
fn redis_is_there_for_the_instances_and_keeps_what_it_acknowledged() {
    let doc = compose();
    let redis = service(&doc, "redis");
    assert!(redis["image"].as_str().unwrap().starts_with("redis:7"));
    // The bus counts as durable once Redis answers: it must have fsynced by then.
    // redis-server takes `--name value` pairs.
    let args = strings(&redis["command"]);
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str);
    assert_eq!(value("--appendonly"), Some("yes"));
    assert_eq!(value("--appendfsync"), Some("always"));
}

#[test]
fn the_load_balancer_sends_clients_only_to_ready_instances() {
    let doc = compose();
    let lb = service(&doc, "lb");
    let (host, _) = bind_mounts(lb).into_iter().next().expect("the HAProxy configuration is mounted");
    let cfg = std::fs::read_to_string(&host).unwrap();
    assert!(cfg.contains("option httpchk GET /readyz") && cfg.contains("http-check expect status 200"), "{cfg}");
    assert!(cfg.contains("timeout tunnel"), "WebSockets outlive the default timeouts");
    for instance in INSTANCES {
        assert!(cfg.contains(&format!("server {instance} {instance}:8080 check")), "{instance} is balanced");
    }
    assert!(strings(&lb["ports"]).iter().any(|p| p == "8080:8080"));
}

const INSTANCES: [&str; 2] = ["opslive-a", "opslive-b"];

#[test]
fn both_instances_run_a_configuration_opslive_accepts_in_one_cluster() {
    let doc = compose();
    let mut members = Vec::new();
    for name in INSTANCES {
        let cluster = instance_config(&doc, name);
        assert_eq!(cluster.advertise_url.as_deref(), Some(format!("http://{name}:8080").as_str()));
        assert!(cluster.redis_url.starts_with("redis://redis:"), "the compose Redis");
        members.push(cluster);
    }
    let (a, b) = (&members[0], &members[1]);
    assert_ne!(a.instance, b.instance);
    assert_eq!((&a.name, &a.redis_url, &a.secret), (&b.name, &b.redis_url, &b.secret), "one cluster");
}

/// Loads the configuration instance `name` runs with, as its container would; checks its
/// sources and app database, and returns its `[cluster]`.
fn instance_config(doc: &Yaml, name: &str) -> opslive::cluster::ClusterConfig {
    let ops = service(doc, name);
    assert_eq!(strings(&ops["command"]), ["serve"]);
    for db in ["postgres", "mariadb", "redis"] {
        assert_eq!(
            ops["depends_on"][db]["condition"].as_str(),
            Some("service_healthy"),
            "opslive waits for {db} to be healthy"
        );
        assert!(!doc["services"][db]["healthcheck"].is_badvalue(), "{db} has a healthcheck");
    }
    let env = environment(ops);
    let mounts = bind_mounts(ops);
    let (host_config, _) =
        mounts.iter().find(|(_, c)| *c == env["OPSLIVE_CONFIG"]).expect("OPSLIVE_CONFIG points at a mounted file");
    assert!(std::path::Path::new(host_config).is_file());
    assert!(std::path::Path::new("Dockerfile").is_file(), "`build: .` has a Dockerfile");

    // Load that file with that environment, as the container would.
    for (k, v) in &env {
        // SAFETY: this test binary's tests do not read the environment concurrently; nextest
        // runs each test in its own process.
        unsafe { std::env::set_var(k, v) };
    }
    let config = opslive::config::Config::load(Some(std::path::Path::new(host_config))).unwrap();
    for k in env.keys() {
        // SAFETY: as above.
        unsafe { std::env::remove_var(k) };
    }
    assert_eq!(config.listen.port(), 8080, "the port the load balancer sends to");
    assert!(config.listen.ip().is_unspecified(), "reachable from outside the container");
    let url = &config.sources["shop"].url().0;
    assert_eq!(url.host_str(), Some("postgres"), "the source is the compose PostgreSQL");
    assert_eq!(url.path(), "/shop");
    assert_eq!(url.password(), environment(service(doc, "postgres")).get("POSTGRES_PASSWORD").map(String::as_str));
    let helpdesk = &config.sources["helpdesk"];
    assert_eq!(helpdesk.kind(), opslive::config::SourceKind::Mariadb);
    let url = &helpdesk.url().0;
    assert_eq!(url.host_str(), Some("mariadb"), "the helpdesk is the compose MariaDB");
    assert_eq!(url.path(), "/helpdesk");
    assert_eq!(url.password(), environment(service(doc, "mariadb")).get("MARIADB_ROOT_PASSWORD").map(String::as_str));
    let app = config.app_database_url().unwrap();
    assert_eq!(app.0.host_str(), Some("postgres"));
    assert_ne!(app.0.path(), "/shop", "the app database is not the source");
    let cluster = config.cluster.expect("a cluster member");
    cluster.check().unwrap();
    cluster
}
