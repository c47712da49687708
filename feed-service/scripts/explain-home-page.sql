-- The pull strategy's home-page query, planned and timed by PostgreSQL against the plain form it
-- replaces, on two generated graphs (DESIGN.md §6). Run from the workspace root:
--
--   psql postgres://postgres@127.0.0.1:5432/postgres -f feed-service/scripts/explain-home-page.sql
--
-- It works in a schema of its own (feed_explain), dropped at the end, with the service's
-- migration. The reader (user 1) follows 299 of 2,000 users; the page is 20 posts (21 asked).
\set ON_ERROR_STOP on
\pset pager off
DROP SCHEMA IF EXISTS feed_explain CASCADE;
CREATE SCHEMA feed_explain;
SET search_path = feed_explain;
\i feed-service/migrations/postgres/20261201000001_feed.sql

INSERT INTO users SELECT g, 'user_' || g, 'hash_' || g, now() FROM generate_series(1, 2000) g;
INSERT INTO follows SELECT 1, g, now() FROM generate_series(2, 300) g;

\echo
\echo '== busy authors: 200,000 posts spread evenly over all 2,000 users'
INSERT INTO posts SELECT g, 1 + (g % 2000), 'post ' || g, now(), NULL FROM generate_series(1, 200000) g;
ANALYZE;

\echo '-- bounded merge (src/store/postgres.rs)'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
SELECT p.id, p.author_id, u.handle, p.text, p.created_at
FROM (SELECT p.id, p.author_id, p.text, p.created_at
      FROM (SELECT 1::bigint AS author_id
            UNION ALL
            SELECT followee_id FROM follows WHERE follower_id = 1) AS authors
      CROSS JOIN LATERAL (
          SELECT id, author_id, text, created_at FROM posts
          WHERE posts.author_id = authors.author_id AND posts.deleted_at IS NULL
            AND posts.id < 9223372036854775807
          ORDER BY posts.id DESC LIMIT 21) AS p
      ORDER BY p.id DESC LIMIT 21) AS p
JOIN users u ON u.id = p.author_id
ORDER BY p.id DESC;

\echo '-- plain IN'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
SELECT p.id, p.author_id, u.handle, p.text, p.created_at
FROM posts p JOIN users u ON u.id = p.author_id
WHERE p.deleted_at IS NULL AND p.id < 9223372036854775807
  AND p.author_id IN (SELECT 1 UNION ALL SELECT followee_id FROM follows WHERE follower_id = 1)
ORDER BY p.id DESC LIMIT 21;

\echo
\echo '== quiet authors: the 299 followed users posted 5 times each, long ago; 200,000 newer posts by the others'
TRUNCATE posts;
INSERT INTO posts SELECT g, 2 + (g % 299), 'old ' || g, now(), NULL FROM generate_series(1, 1495) g;
INSERT INTO posts SELECT 10000 + g, 301 + (g % 1700), 'new ' || g, now(), NULL FROM generate_series(1, 200000) g;
ANALYZE;

\echo '-- bounded merge (src/store/postgres.rs)'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
SELECT p.id, p.author_id, u.handle, p.text, p.created_at
FROM (SELECT p.id, p.author_id, p.text, p.created_at
      FROM (SELECT 1::bigint AS author_id
            UNION ALL
            SELECT followee_id FROM follows WHERE follower_id = 1) AS authors
      CROSS JOIN LATERAL (
          SELECT id, author_id, text, created_at FROM posts
          WHERE posts.author_id = authors.author_id AND posts.deleted_at IS NULL
            AND posts.id < 9223372036854775807
          ORDER BY posts.id DESC LIMIT 21) AS p
      ORDER BY p.id DESC LIMIT 21) AS p
JOIN users u ON u.id = p.author_id
ORDER BY p.id DESC;

\echo '-- plain IN'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
SELECT p.id, p.author_id, u.handle, p.text, p.created_at
FROM posts p JOIN users u ON u.id = p.author_id
WHERE p.deleted_at IS NULL AND p.id < 9223372036854775807
  AND p.author_id IN (SELECT 1 UNION ALL SELECT followee_id FROM follows WHERE follower_id = 1)
ORDER BY p.id DESC LIMIT 21;

RESET search_path;
DROP SCHEMA feed_explain CASCADE;
