//! Compaction against recovery: what a log holds after segments were compacted (and
//! after a crash between a compaction's sync and its delete) is exactly what was live.

use super::compact::DEAD_RATIO;
use super::queue_log::QueueLog;
use super::sync::Syncer;
use std::collections::BTreeMap;

mod fixture;
use fixture::*;

#[test]
fn one_old_unacked_message_does_not_keep_the_history() {
    let dir = temp_dir("pinned");
    let syncer = Syncer::for_tests();
    let mut log = fresh(&dir, &syncer);
    let pinned = log.publish(0, message(0).record(), 0).unwrap();
    log.delivered(0).unwrap();
    let mut most = 0;
    // Batches of ten published, then acked: acks straddle segment boundaries.
    for batch in 0..300u64 {
        let seqs: Vec<u64> = (1 + batch * 10..=10 + batch * 10).collect();
        let at: Vec<(u64, u64)> = seqs
            .iter()
            .map(|&s| log.publish(s, message(s).record(), 0).unwrap())
            .collect();
        for (&s, &(seg, _)) in seqs.iter().zip(&at) {
            log.delivered(s).unwrap();
            log.settled(s, seg).unwrap();
        }
        most = most.max(segment_files(&dir));
    }
    // 3,000 messages went through about 800 segments; the old one kept at most a few.
    assert!(most <= 6, "{most} segment files at once");
    // The pinned message is read back where its entry says it is, though it moved.
    let read = log.read(0, pinned.0, pinned.1).unwrap();
    assert_eq!(read.body, body(0));
    drop(log);
    let (found, _log) = recover(&dir, &syncer);
    let live: Vec<(u64, bool)> = found.iter().map(|(&s, &(_, d))| (s, d)).collect();
    assert_eq!(
        live,
        vec![(0, true)],
        "only the unacked message, still redelivered"
    );
    syncer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn random_traffic_with_restarts_recovers_exactly_what_is_live() {
    random_traffic("model", None);
}

/// The same with the disk work on a (simulated) store's thread: compaction planned,
/// applied and unlinked in steps that interleave with traffic, and restarts that come
/// while some of those steps are still queued.
#[test]
fn random_traffic_with_background_compaction_and_restarts() {
    random_traffic("background", Some(Tasks::default()));
}

fn random_traffic(name: &str, tasks: Option<Tasks>) {
    let dir = temp_dir(name);
    let syncer = Syncer::for_tests();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut log = fresh(&dir, &syncer);
    if let Some(t) = &tasks {
        t.attach(&mut log);
    }
    // The model: live seq → (where its entry says it is, delivered).
    let mut model: BTreeMap<u64, ((u64, u64), bool)> = BTreeMap::new();
    let mut next = 0u64;
    let mut most = 0;
    let mut copied = 0;
    for round in 0..12 {
        for _ in 0..400 {
            match rng.below(10) {
                0..=3 => {
                    let at = log.publish(next, message(next).record(), 0).unwrap();
                    model.insert(next, (at, false));
                    // Transient messages of the queue take seqs too: gaps, now and then wide.
                    next += 1 + if rng.below(8) == 0 {
                        rng.below(5000)
                    } else {
                        0
                    };
                }
                4 | 5 if !model.is_empty() => {
                    let &seq = model
                        .keys()
                        .nth(rng.below(model.len() as u64) as usize)
                        .unwrap();
                    log.delivered(seq).unwrap();
                    model.get_mut(&seq).unwrap().1 = true;
                }
                // Mostly the oldest of the quickly acked ones; now and then any, so that
                // every eighth message (held long) pins segments and spreads the live set.
                6..=9 if !model.is_empty() => {
                    let quick = model.keys().find(|&&s| s % 8 != 0).copied();
                    let seq = match quick {
                        Some(seq) if rng.below(10) != 0 => seq,
                        _ => *model
                            .keys()
                            .nth(rng.below(model.len() as u64) as usize)
                            .unwrap(),
                    };
                    let ((seg, _), _) = model[&seq];
                    log.settled(seq, seg).unwrap();
                    model.remove(&seq);
                }
                _ => {}
            }
            if let Some(t) = &tasks {
                // Mostly a step now and then; sometimes the thread catches up.
                let steps = match rng.below(40) {
                    0 => 1000,
                    1..=20 => 1,
                    _ => 0,
                };
                for _ in 0..steps {
                    let ran;
                    (log, ran) = t.run_one(log);
                    if !ran {
                        break;
                    }
                }
            }
            // Disk follows the live set: a few segments of slack beyond what it needs.
            let live_bytes: usize = model.keys().map(|&s| body(s).len() + 80).sum();
            let needed = DEAD_RATIO as usize * live_bytes / SEGMENT as usize;
            // Segments also hold delivered and settle marks: 3/2 of the estimate, plus slack.
            // Segments on their way out (their unlink queued, or their copies' sync) are
            // not slack; that they do go is checked at the end of each round.
            let leaving = log
                .live
                .segments
                .values()
                .filter(|s| s.awaiting_removal)
                .count();
            let files = segment_files(&dir).saturating_sub(leaving);
            most = most.max(files.saturating_sub(needed * 3 / 2));
            copied = copied.max(log.live.moved.len());
        }
        // Every live message reads back through the place its entry names.
        for (&seq, &((seg, off), _)) in &model {
            assert_eq!(
                log.read(seq, seg, off).unwrap().body,
                body(seq),
                "round {round}"
            );
        }
        if let Some(t) = &tasks
            && rng.below(2) == 0
        {
            // Half the restarts come after the thread caught up: then nothing is left
            // waiting to go.
            log = t.drain(log, &syncer);
            assert!(
                log.live.segments.values().all(|s| !s.awaiting_removal),
                "round {round}"
            );
        }
        drop(log);
        let (found, reopened, next_seq) = recover_seq(&dir, &syncer);
        log = reopened;
        if let Some(t) = &tasks {
            t.attach(&mut log);
        }
        // As the broker does: new seqs start above every seq the log still names.
        assert!(next_seq <= next, "round {round}");
        next = next_seq;
        let want: Vec<(u64, bool)> = model.iter().map(|(&s, &(_, d))| (s, d)).collect();
        let got: Vec<(u64, bool)> = found.iter().map(|(&s, &(_, d))| (s, d)).collect();
        assert_eq!(got, want, "round {round}");
        model = found;
    }
    // The background variant compacts less often (its steps wait for the "thread").
    let least = if tasks.is_some() { 5 } else { 10 };
    assert!(copied > least, "compaction copied live messages ({copied})");
    assert!(
        most <= 8,
        "{most} segment files beyond what the live messages need"
    );
    syncer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_crash_between_a_compactions_sync_and_its_delete_recovers_each_message_once() {
    let dir = temp_dir("crash");
    let syncer = Syncer::for_tests();
    let mut log = fresh(&dir, &syncer);
    log.crash_at_remove = Some(1);
    // Every tenth message stays (delivered), the rest are acked: the sealed segments are
    // mostly dead, so compaction copies the live ones out of segment 1 and deletes it.
    let mut kept = Vec::new();
    let mut places = Vec::new();
    let mut seq = 0;
    // Each step writes one record, then may compact; after the crash nothing more is
    // written, so the loop stops at once (what was written before it counts).
    loop {
        let (seg, off) = log.publish(seq, message(seq).record(), 0).unwrap();
        if seq % 10 == 0 || log.crashed {
            places.push((seq, seg, off));
            kept.push((seq, false));
        }
        if log.crashed {
            break;
        }
        if seq % 10 != 0 {
            log.settled(seq, seg).unwrap();
            if log.crashed {
                break;
            }
        }
        // Delivered a little later: the mark lands in a newer segment than the publish.
        if seq % 10 == 5 {
            log.delivered(seq - 5).unwrap();
            kept.iter_mut().for_each(|k| k.1 |= k.0 == seq - 5);
            if log.crashed {
                break;
            }
        }
        seq += 1;
        assert!(seq < 10_000, "segment 1 was never compacted");
    }
    assert!(
        log.live.moved.len() > 1,
        "live messages were copied before the crash"
    );
    for &(seq, seg, off) in &places {
        assert_eq!(log.read(seq, seg, off).unwrap().body, body(seq));
    }
    drop(log);
    // The crash left segment 1 beside the copies of its live messages.
    assert!(dir.join(format!("{:016}.seg", 1)).exists());
    let (found, _log) = recover(&dir, &syncer);
    let live: Vec<(u64, bool)> = found.iter().map(|(&s, &(_, d))| (s, d)).collect();
    assert_eq!(live, kept, "each message once, still redelivered");
    syncer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_delivered_mark_outlives_the_segment_it_was_written_in() {
    let dir = temp_dir("marks");
    let syncer = Syncer::for_tests();
    let mut log = fresh(&dir, &syncer);
    // Every tenth message is delivered five publishes later (its mark in a newer segment
    // than its publish record, often) and acked later still; every hundredth stays.
    let mut held = Vec::new();
    for seq in 0..3000u64 {
        let (seg, _) = log.publish(seq, message(seq).record(), 0).unwrap();
        if seq % 10 == 0 {
            held.push((seq, seg));
        } else {
            log.settled(seq, seg).unwrap();
        }
        if seq % 10 == 5 {
            log.delivered(seq - 5).unwrap();
        }
        if seq % 50 == 0 {
            // Ack the held ones that are not kept for good, oldest first.
            for &(s, seg) in held.iter().filter(|(s, _)| s % 100 != 0 && *s + 30 < seq) {
                log.settled(s, seg).unwrap();
            }
            held.retain(|(s, _)| s % 100 == 0 || *s + 30 >= seq);
        }
    }
    for &(s, seg) in held.iter().filter(|(s, _)| s % 100 != 0) {
        log.settled(s, seg).unwrap();
    }
    drop(log);
    let (found, _log) = recover(&dir, &syncer);
    let live: Vec<(u64, bool)> = found.iter().map(|(&s, &(_, d))| (s, d)).collect();
    let want: Vec<(u64, bool)> = (0..3000).step_by(100).map(|s| (s, true)).collect();
    assert_eq!(live, want);
    syncer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_emptied_oldest_segment_keeps_the_delivered_mark_of_a_copied_message() {
    let dir = temp_dir("front");
    let syncer = Syncer::for_tests();
    let mut log = fresh(&dir, &syncer);
    let mut seq = 0;
    // Publish acked fillers until the log starts segment `until`.
    let fill = |log: &mut QueueLog, seq: &mut u64, until: u64| {
        while log.current.no < until {
            let (seg, _) = log.publish(*seq, message(*seq).record(), 0).unwrap();
            log.settled(*seq, seg).unwrap();
            *seq += 1;
        }
    };
    // Segment 1 holds X; X's delivered mark and Z go to segment 2; W to segment 3.
    log.publish(0, message(0).record(), 0).unwrap();
    seq += 1;
    fill(&mut log, &mut seq, 2);
    log.delivered(0).unwrap();
    let z = seq;
    let (z_seg, _) = log.publish(z, message(z).record(), 0).unwrap();
    seq += 1;
    fill(&mut log, &mut seq, 3);
    let w = seq;
    log.publish(w, message(w).record(), 0).unwrap();
    seq += 1;
    // Sealing segment 3 makes the sealed ones mostly dead: segment 1 is compacted (X is
    // copied), segment 2 stays for Z.
    fill(&mut log, &mut seq, 4);
    assert!(!log.live.segments.contains_key(&1) && log.live.moved.contains_key(&0));
    assert!(log.live.segments.contains_key(&2));
    // Z acked: segment 2 is the oldest and empty, but holds X's delivered mark.
    log.settled(z, z_seg).unwrap();
    assert!(!log.live.segments.contains_key(&2));
    drop(log);
    let (found, _log) = recover(&dir, &syncer);
    let live: Vec<(u64, bool)> = found.iter().map(|(&s, &(_, d))| (s, d)).collect();
    assert_eq!(live, vec![(0, true), (w, false)]);
    syncer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Segments that hold only marks are not compacted: moving marks frees nothing, and the
/// segment they filled would be picked next, rewriting the same marks on every write.
#[test]
fn marks_are_not_rewritten_over_and_over() {
    let dir = temp_dir("marks-only");
    let syncer = Syncer::for_tests();
    let mut log = fresh(&dir, &syncer);
    // A quarter of the messages wait (a queue's low priorities, say); the rest are acked
    // long after, in one burst: segments of settle marks that the kept segments need.
    let mut places = Vec::new();
    for seq in 0..2000u64 {
        places.push((seq, log.publish(seq, message(seq).record(), 0).unwrap().0));
    }
    for &(seq, seg) in places.iter().filter(|(s, _)| s % 4 != 0) {
        log.settled(seq, seg).unwrap();
    }
    // Now ordinary traffic: each message published and acked. What it writes is about
    // 100 bytes; segments should advance at that pace, not at the pace of recopied marks.
    let before = log.current.no;
    for seq in 2000..2200u64 {
        let (seg, _) = log.publish(seq, message(seq).record(), 0).unwrap();
        log.settled(seq, seg).unwrap();
    }
    let advanced = log.current.no - before;
    assert!(advanced < 60, "{advanced} segments for 200 small messages");
    syncer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
