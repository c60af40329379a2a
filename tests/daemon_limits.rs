//! Work limits (issue 12): a model reference or Horde document asking for more
//! work than `[limits]` allows fails its category with an error naming the
//! limit and the setting; the category keeps its entries, the other is written.

mod common;

use common::daemon::{
    category_entries, dump_file, run_cli, snapshot, wait_for_entries, wait_until, Daemon, Setup, ENTRY_NAMES,
};
use common::horde_server::{copy_dataset, read_json, write_json, HordeServer};
use common::redis_server::RedisServer;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Adds `n` tiny records to the text reference of `dataset`.
fn grow_text_reference(dataset: &Path, n: usize) {
    let path = dataset.join("model_reference/text_generation.json");
    let mut reference = read_json(&path);
    let records = reference.as_object_mut().unwrap();
    for i in 0..n {
        records.insert(format!("Tiny/Model-{i}"), json!({"name": format!("Tiny/Model-{i}")}));
    }
    write_json(&path, &reference);
}

fn text_models(dataset: &Path) -> usize {
    read_json(&dataset.join("model_reference/text_generation.json")).as_object().unwrap().len()
}

#[test]
fn once_over_the_model_limit_fails_naming_it_and_writes_the_other_category() {
    let data = copy_dataset(&common::example_data());
    let limit = text_models(data.path()) + 2;
    grow_text_reference(data.path(), 3);
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::from_snapshot(data.path(), None);
    setup.set("limits", "max_models_per_category", &limit.to_string());
    let config = setup.write(dir.path());
    let out_dir = dir.path().join("out");
    let run = run_cli(&config, &[], &["once", "--dump", out_dir.to_str().unwrap()], Duration::from_secs(60));
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let want = format!(
        "has {} models, more than the limit of {limit} (setting limits.max_models_per_category)",
        limit + 1
    );
    assert!(run.stderr.contains(&want), "{want:?} not in:\n{}", run.stderr);
    for name in ENTRY_NAMES {
        let written = out_dir.join(dump_file(name)).exists();
        assert_eq!(written, name.contains("image_generation"), "{name}: written {written}");
    }
}

#[test]
fn run_keeps_the_entries_of_a_category_over_a_limit() {
    let data = copy_dataset(&common::example_data());
    let horde = HordeServer::start(data.path());
    let redis = RedisServer::start();
    let mut setup = Setup::new(&horde, Some(&redis.url()));
    let limit = text_models(data.path()) + 2;
    setup.interval(1).set("limits", "max_models_per_category", &limit.to_string());
    let daemon = Daemon::start(&setup);
    wait_for_entries(&redis, &daemon.prefix, Duration::from_secs(60));
    let mut client = redis.client();
    let text_before = snapshot(&mut client, &daemon.prefix, &category_entries("text_generation"));
    let image_key = daemon.key("stats:image_generation:grouped=false");
    let image_before: Value = client.get_json(&image_key).unwrap();

    grow_text_reference(data.path(), 3);
    wait_until(Duration::from_secs(20), "two cycles over the limit", || {
        (daemon.log().matches("(setting limits.max_models_per_category)").count() >= 2).then_some(())
    });
    wait_until(Duration::from_secs(10), "the image entries rewritten", || {
        let now: Value = client.get_json(&image_key)?;
        (now["computed_at"] != image_before["computed_at"]).then_some(())
    });
    let text_after = snapshot(&mut client, &daemon.prefix, &category_entries("text_generation"));
    assert_eq!(
        text_after, text_before,
        "the text entries changed although the text reference is over the limit"
    );
}
