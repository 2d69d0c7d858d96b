use super::*;

fn overlay_dir() -> (tempfile::TempDir, Layers) {
    let d = tempfile::tempdir().unwrap();
    let rw = d.path().join("overlay");
    for p in ["image", "overlay/upper", "overlay/work"] {
        std::fs::create_dir_all(d.path().join(p)).unwrap();
    }
    std::fs::write(rw.join("upper/data"), "one").unwrap();
    let layers = Layers::new(d.path().join("image"), rw);
    (d, layers)
}

#[test]
fn a_stopped_overlay_snapshot_freezes_its_upper_layer_in_place() {
    let (d, layers) = overlay_dir();
    let taken = take(d.path(), "snap0", Kind::Overlay, Path::new("/none"), Some(&layers), "cfg", false).unwrap();
    let chain = taken.chain.clone().unwrap();
    assert_eq!(chain.layers, vec!["upper".to_string()]);
    assert!(super::super::is_layer_name(&chain.upper) && chain.upper != "upper");
    assert!(layers.rw.join(&chain.upper).is_dir());
    // Not listed until published; the data stayed where it was (no copy).
    assert!(list(d.path()).unwrap().is_empty());
    publish(d.path(), taken, "snap0").unwrap();
    let snaps = list(d.path()).unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].record.layers, vec!["upper".to_string()]);
    assert_eq!(std::fs::read_to_string(layers.rw.join("upper/data")).unwrap(), "one");
    assert_eq!(std::fs::read_to_string(path(d.path(), "snap0").join(CONFIG)).unwrap(), "cfg");
}

#[test]
fn a_live_overlay_snapshot_copies_the_upper_layer() {
    let (d, layers) = overlay_dir();
    let taken = take(d.path(), "s", Kind::Overlay, Path::new("/none"), Some(&layers), "", true).unwrap();
    assert!(taken.chain.is_none());
    publish(d.path(), taken, "s").unwrap();
    let rec = &list(d.path()).unwrap()[0].record;
    let top = rec.layers.last().unwrap();
    assert_ne!(top, "upper");
    assert_eq!(std::fs::read_to_string(layers.rw.join(top).join("data")).unwrap(), "one");
}

#[test]
fn unreferenced_layers_are_collected_and_referenced_ones_kept() {
    let (d, mut layers) = overlay_dir();
    let taken = take(d.path(), "s", Kind::Overlay, Path::new("/none"), Some(&layers), "", false).unwrap();
    let chain = taken.chain.clone().unwrap();
    publish(d.path(), taken, "s").unwrap();
    (layers.layers, layers.upper) = (chain.layers.clone(), chain.upper.clone());
    std::fs::create_dir(layers.rw.join("L-00000000000000ff")).unwrap();
    std::fs::create_dir(layers.rw.join("not-a-layer")).unwrap();
    assert_eq!(collect(d.path(), &layers).unwrap(), vec!["L-00000000000000ff".to_string()]);
    assert!(
        layers.rw.join("upper").is_dir() && layers.rw.join("work").is_dir() && layers.rw.join("not-a-layer").is_dir()
    );
    // Deleting the snapshot while the chain still uses its layer keeps the layer.
    delete(d.path(), "s").unwrap();
    assert!(collect(d.path(), &layers).unwrap().is_empty());
    // A restore to nothing would drop it: here, a chain without it.
    layers.layers.clear();
    assert_eq!(collect(d.path(), &layers).unwrap(), vec!["upper".to_string()]);
}

#[test]
fn an_unreadable_record_stops_collection() {
    let (d, layers) = overlay_dir();
    std::fs::create_dir_all(path(d.path(), "bad")).unwrap();
    std::fs::write(path(d.path(), "bad").join(RECORD), "created_ms = \"x\"").unwrap();
    std::fs::create_dir(layers.rw.join("L-00000000000000ff")).unwrap();
    assert!(matches!(collect(d.path(), &layers), Err(Error::BadRecord { .. })));
    assert!(layers.rw.join("L-00000000000000ff").is_dir());
}

#[test]
fn dir_snapshots_copy_and_restore_exchanges_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let rootfs = d.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    std::fs::write(rootfs.join("f"), "before").unwrap();
    let taken = take(d.path(), "a", Kind::Dir, &rootfs, None, "", false).unwrap();
    publish(d.path(), taken, "a").unwrap();
    std::fs::write(rootfs.join("f"), "after").unwrap();
    std::fs::write(rootfs.join("g"), "new").unwrap();
    let snap = list(d.path()).unwrap().remove(0);
    restore(d.path(), &snap, &rootfs, None).unwrap();
    assert_eq!(std::fs::read_to_string(rootfs.join("f")).unwrap(), "before");
    assert!(!rootfs.join("g").exists());
    assert!(!d.path().join(NEW_ROOTFS).exists());
    // The snapshot itself is untouched by the restore.
    assert!(path(d.path(), "a").join("rootfs/f").exists());
}

#[test]
fn names_clash_and_default_names_count_up() {
    let d = tempfile::tempdir().unwrap();
    let rootfs = d.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    for n in ["snap0", "snap7", "other"] {
        let t = take(d.path(), n, Kind::Dir, &rootfs, None, "", false).unwrap();
        publish(d.path(), t, n).unwrap();
    }
    assert_eq!(next_name(&list(d.path()).unwrap()), "snap8");
    let t = take(d.path(), "x", Kind::Dir, &rootfs, None, "", false).unwrap();
    assert!(matches!(publish(d.path(), t, "other"), Err(Error::SnapshotExists { .. })));
    assert!(matches!(rename(d.path(), "snap0", "snap7"), Err(Error::SnapshotExists { .. })));
    rename(d.path(), "snap0", "first").unwrap();
    assert!(path(d.path(), "first").is_dir() && !path(d.path(), "snap0").exists());
}

#[test]
fn recovery_completes_committed_overlay_snapshots_and_drops_the_rest() {
    let (d, layers) = overlay_dir();
    let t = take(d.path(), "done", Kind::Overlay, Path::new("/none"), Some(&layers), "", false).unwrap();
    let chain = t.chain.clone().unwrap();
    drop(t); // killed after the config was saved: the staging directory stays
    let t = take(d.path(), "half", Kind::Dir, &d.path().join("image"), None, "", false).unwrap();
    drop(t);
    let notes = recover(d.path(), &d.path().join("rootfs"), Some(&chain.layers));
    assert_eq!(notes.len(), 2, "{notes:?}");
    let names: Vec<String> = list(d.path()).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["done".to_string()]);
    assert!(!root(d.path()).join(".staging-half").exists());
}
