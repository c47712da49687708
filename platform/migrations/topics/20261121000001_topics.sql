-- The embedded transport's file (platform/src/topic/sqlite.rs). Everything else about a topic
-- lives in memory and is rebuilt from these three tables when the file is opened: consumer group
-- members are not here, since a member does not outlive its process.

-- A topic and its partition count, which never changes (see Topics::ensure_topic).
CREATE TABLE topics (
    name       TEXT    PRIMARY KEY,
    partitions INTEGER NOT NULL CHECK (partitions > 0)
);

-- Every record ever published: logs are never truncated.
CREATE TABLE records (
    topic           TEXT    NOT NULL REFERENCES topics (name),
    partition_index INTEGER NOT NULL,
    -- The record's position in its partition: 0, 1, 2… without gaps.
    record_offset   INTEGER NOT NULL,
    key             BLOB    NOT NULL,
    payload         BLOB    NOT NULL,
    -- The headers in order, as JSON: [["event_id", [101, 45, 49]], …] (names, then value bytes).
    headers         BLOB    NOT NULL,
    PRIMARY KEY (topic, partition_index, record_offset)
) WITHOUT ROWID;

-- Each consumer group's progress: the offset of the next record to process, per partition.
CREATE TABLE commits (
    group_name      TEXT    NOT NULL,
    topic           TEXT    NOT NULL REFERENCES topics (name),
    partition_index INTEGER NOT NULL,
    next_offset     INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic, partition_index)
) WITHOUT ROWID;
