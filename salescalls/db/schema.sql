-- salescalls database schema, as numbered migrations.
--
-- Each "-- migration N: title" block runs once, in order, inside a transaction; the database
-- records what it applied in schema_version and upgrades itself on the next write connection.
-- Never edit a migration that has shipped: add a new one below.

-- migration 1: calls, utterances, call results, script stages, runs, quarantine
CREATE TABLE runs (
    run_id        VARCHAR PRIMARY KEY,   -- uuid of one nightly run
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    inbox         VARCHAR NOT NULL,      -- folder that was scanned
    status        VARCHAR NOT NULL,      -- running, completed, failed
    files_seen    INTEGER DEFAULT 0,     -- recordings found in the inbox
    calls_added   INTEGER DEFAULT 0,     -- new calls stored
    calls_skipped INTEGER DEFAULT 0,     -- already stored (same audio hash)
    quarantined   INTEGER DEFAULT 0,     -- files moved to quarantine
    message       VARCHAR                -- error or note
);

CREATE TABLE calls (
    call_id         VARCHAR PRIMARY KEY, -- sha256 of the recording's bytes
    file            VARCHAR NOT NULL,    -- file name as it arrived
    external_id     VARCHAR,             -- the CRM's id of the call (calls.csv call_id)
    rep             VARCHAR,             -- rep name from the CRM metadata
    started_at      TIMESTAMP,           -- when the call took place (CRM), else when processed
    duration        DOUBLE NOT NULL,     -- seconds
    channels        INTEGER NOT NULL,
    sample_rate     INTEGER NOT NULL,
    codec           VARCHAR,
    language        VARCHAR,
    segment         VARCHAR,             -- client temperature: cold, warm, hot
    campaign        VARCHAR,
    crm_outcome     VARCHAR,             -- sale, meeting, callback, refusal (from the CRM)
    script_id       VARCHAR NOT NULL,
    script_version  INTEGER NOT NULL,
    stage_model     VARCHAR NOT NULL,    -- which stage model labelled the utterances
    whisper_model   VARCHAR NOT NULL,
    diarization     VARCHAR NOT NULL,    -- channels (stereo) or pyannote (mono)
    role_method     VARCHAR NOT NULL,    -- channel or text
    role_confidence DOUBLE,
    run_id          VARCHAR,             -- run that stored it
    processed_at    TIMESTAMP NOT NULL,
    timings         JSON                 -- seconds per pipeline step
);

CREATE TABLE utterances (
    call_id     VARCHAR NOT NULL,
    idx         INTEGER NOT NULL,        -- position in the call
    speaker     VARCHAR NOT NULL,        -- diarization label
    role        VARCHAR NOT NULL,        -- rep or customer
    start_s     DOUBLE NOT NULL,
    end_s       DOUBLE NOT NULL,
    text        VARCHAR NOT NULL,
    stage       VARCHAR NOT NULL,
    confidence  DOUBLE NOT NULL,
    backchannel BOOLEAN NOT NULL,
    PRIMARY KEY (call_id, idx)
);

CREATE TABLE call_results (
    call_id          VARCHAR PRIMARY KEY,
    end_stage        VARCHAR,            -- last stage before the sign-off
    ended_by         VARCHAR,            -- rep or customer
    detected_outcome VARCHAR,            -- from outcome marker phrases
    stages_reached   VARCHAR[],          -- in the order first reached
    stages_skipped   VARCHAR[],          -- required stages passed over
    out_of_order     VARCHAR[],
    forbidden        JSON                -- forbidden phrases the rep said
);

CREATE TABLE script_stages (
    script_id      VARCHAR NOT NULL,
    script_version INTEGER NOT NULL,
    position       INTEGER NOT NULL,     -- 0-based order in the script
    stage          VARCHAR NOT NULL,
    required       BOOLEAN NOT NULL,
    speaker        VARCHAR NOT NULL,
    PRIMARY KEY (script_id, script_version, stage)
);

CREATE TABLE quarantine (
    file           VARCHAR NOT NULL,     -- original path
    content_hash   VARCHAR,
    reason         VARCHAR NOT NULL,     -- one line: why the file was not used
    quarantined_at TIMESTAMP NOT NULL,
    run_id         VARCHAR,
    moved_to       VARCHAR               -- where the file is now
);

-- migration 2: stage labels from people (the review -> label -> retrain loop)
CREATE TABLE labels (
    call_id     VARCHAR NOT NULL,
    idx         INTEGER NOT NULL,        -- utterance position in the call (utterances.idx)
    stage       VARCHAR NOT NULL,        -- the right stage, or off_script
    text        VARCHAR NOT NULL,        -- the utterance's text when it was labelled
    labelled_by VARCHAR,                 -- who gave the label
    labelled_at TIMESTAMP NOT NULL,
    source      VARCHAR,                 -- file the label was imported from
    PRIMARY KEY (call_id, idx)
);
ALTER TABLE calls ADD COLUMN scored_at TIMESTAMP;  -- when the stages were last (re)computed
ALTER TABLE call_results ADD COLUMN predicted_outcome VARCHAR;  -- the outcome model's guess
ALTER TABLE call_results ADD COLUMN outcome_confidence DOUBLE;  -- its probability
ALTER TABLE call_results ADD COLUMN controlled JSON;  -- controlled phrases (allowed only with approval) the rep said

-- migration 3: stored conversation metrics, reps, utterance ids for full-text search
-- Utterances get a unique id (the full-text index's key) and lose the (call_id, idx) primary key:
-- the one writer replaces a call's utterances in one transaction (delete, then insert), which keeps
-- the pair unique, and the key's index tripled the table's size and doubled load time at 40 M rows.
CREATE SEQUENCE utterance_ids START 1;
CREATE TABLE utterances_v3 (
    utterance_id BIGINT NOT NULL DEFAULT nextval('utterance_ids'),  -- unique, grows with insertion
    call_id      VARCHAR NOT NULL,
    idx          INTEGER NOT NULL,       -- position in the call
    speaker      VARCHAR NOT NULL,       -- diarization label
    role         VARCHAR NOT NULL,       -- rep or customer
    start_s      DOUBLE NOT NULL,
    end_s        DOUBLE NOT NULL,
    text         VARCHAR NOT NULL,
    stage        VARCHAR NOT NULL,
    confidence   DOUBLE NOT NULL,
    backchannel  BOOLEAN NOT NULL
);
INSERT INTO utterances_v3 (call_id, idx, speaker, role, start_s, end_s, text, stage, confidence, backchannel)
    SELECT call_id, idx, speaker, role, start_s, end_s, text, stage, confidence, backchannel
    FROM utterances ORDER BY call_id, idx;
DROP TABLE utterances;
ALTER TABLE utterances_v3 RENAME TO utterances;

-- Calls get a number: the analytics join calls to their results on it, 4x faster than on the
-- 64-character audio hash at a million calls.
-- (DuckDB: within one transaction a table's columns are all added before its rows are updated.)
CREATE SEQUENCE call_numbers START 1;
ALTER TABLE calls ADD COLUMN call_no BIGINT DEFAULT nextval('call_numbers');  -- existing calls numbered too
ALTER TABLE call_results ADD COLUMN call_no BIGINT;                -- calls.call_no of the same call

-- Conversation metrics (definitions in salescalls/conversation.py), computed when a call is saved.
ALTER TABLE call_results ADD COLUMN rep_seconds DOUBLE;             -- rep talk time
ALTER TABLE call_results ADD COLUMN customer_seconds DOUBLE;        -- customer talk time
ALTER TABLE call_results ADD COLUMN talk_ratio DOUBLE;              -- rep share of the talk time
ALTER TABLE call_results ADD COLUMN longest_monologue DOUBLE;       -- rep's longest turn, s
ALTER TABLE call_results ADD COLUMN longest_monologue_at DOUBLE;    -- where it starts, s
ALTER TABLE call_results ADD COLUMN longest_customer_story DOUBLE;  -- customer's longest turn, s
ALTER TABLE call_results ADD COLUMN rep_interruptions INTEGER;
ALTER TABLE call_results ADD COLUMN customer_interruptions INTEGER;
ALTER TABLE call_results ADD COLUMN first_interruption_at DOUBLE;   -- when the rep first interrupted, s
ALTER TABLE call_results ADD COLUMN rep_questions INTEGER;          -- rep utterances ending with '?'
ALTER TABLE call_results ADD COLUMN rep_words_per_minute DOUBLE;
ALTER TABLE call_results ADD COLUMN silence_share DOUBLE;           -- share of the call nobody speaks
ALTER TABLE call_results ADD COLUMN first_utterance_id BIGINT;      -- the call's utterances lie in this id range,
ALTER TABLE call_results ADD COLUMN last_utterance_id BIGINT;       -- so looking them up skips the rest of the table

UPDATE call_results SET call_no = c.call_no FROM calls c WHERE c.call_id = call_results.call_id;

CREATE TABLE reps (
    rep           VARCHAR PRIMARY KEY,   -- name as in the CRM metadata
    first_call_at TIMESTAMP,
    last_call_at  TIMESTAMP,
    calls         INTEGER NOT NULL,      -- stored calls
    updated_at    TIMESTAMP NOT NULL
);
INSERT INTO reps SELECT rep, min(started_at), max(started_at), count(*), now() FROM calls
    WHERE rep IS NOT NULL GROUP BY rep;

-- migration 4: where each recording was read, so reports can play it
ALTER TABLE calls ADD COLUMN source VARCHAR;  -- the recording's path when it was processed
UPDATE calls SET source = r.inbox || '/' || calls.file FROM runs r WHERE r.run_id = calls.run_id;

-- migration 5: redaction of personal data (SALESCALLS_REDACT): what was removed where, never the text
ALTER TABLE calls ADD COLUMN redacted BOOLEAN DEFAULT false;  -- personal data removed before storage
CREATE TABLE redactions (
    call_id    VARCHAR NOT NULL,
    idx        INTEGER NOT NULL,          -- the utterance (utterances.idx)
    kind       VARCHAR NOT NULL,          -- email, card, iban, phone, person
    start_char INTEGER NOT NULL,          -- the placeholder's place in the stored text
    end_char   INTEGER NOT NULL,
    start_s    DOUBLE NOT NULL,           -- the removed words' estimated time in the recording, s
    end_s      DOUBLE NOT NULL            -- (the report silences it in the audio it publishes)
);

-- migration 6: what each nightly run met and used (monitoring)
ALTER TABLE runs ADD COLUMN files_waiting INTEGER DEFAULT 0;  -- still being copied, left for the next run
ALTER TABLE runs ADD COLUMN errors VARCHAR;          -- JSON object: kind of problem -> how many (files, CRM rows)
ALTER TABLE runs ADD COLUMN engine VARCHAR;          -- where the calls ran: sequential, dask local xN, dask <address>
ALTER TABLE runs ADD COLUMN workers INTEGER;         -- worker processes that analysed calls
ALTER TABLE runs ADD COLUMN models_loaded INTEGER;   -- most speech-model loads in one worker (2: loaded once)
ALTER TABLE runs ADD COLUMN peak_rss_mb DOUBLE;      -- largest peak resident memory of a worker or the writer, MB

-- migration 7: the calls each run has in flight, so a recording that kills the run itself is found
CREATE TABLE attempts (
    call_id VARCHAR NOT NULL,       -- sha256 of the recording
    file VARCHAR NOT NULL,          -- where the run read it
    run_id VARCHAR NOT NULL,        -- the run that sent it to a worker
    started_at TIMESTAMP NOT NULL   -- when; the row goes when the call is stored or quarantined
);

-- migration 8: sentence vectors kept per text, role notes, labelled dialogue corpora
ALTER TABLE calls ADD COLUMN role_note VARCHAR;  -- warning about the roles (words contradict the channel convention, ...)
-- Each text is encoded once: rescoring and retraining read its vector here instead of encoding again.
CREATE TABLE text_embeddings (
    encoder  VARCHAR NOT NULL,  -- sentence encoder identity (salescalls.encoder)
    text_key VARCHAR NOT NULL,  -- encoder.text_key(text): hash of the NFC text
    vector   BLOB NOT NULL,     -- float16 values, little-endian
    PRIMARY KEY (encoder, text_key)
);
-- Labelled transcripts that are not stored calls (a team's earlier calls, a public corpus):
-- training data for the stage model before the first night (`salescalls labels import`).
CREATE TABLE labelled_turns (
    corpus      VARCHAR NOT NULL,  -- name of the imported file
    dialogue    VARCHAR NOT NULL,  -- the call's id in that file
    idx         INTEGER NOT NULL,  -- turn order in the call
    role        VARCHAR,           -- rep, customer or '' (unknown)
    text        VARCHAR NOT NULL,
    stage       VARCHAR,           -- NULL: context only, not a label
    script_id   VARCHAR NOT NULL,  -- the script whose stages the labels name
    language    VARCHAR,
    imported_at TIMESTAMP NOT NULL,
    PRIMARY KEY (corpus, dialogue, idx)
);

-- migration 9: questions counted from their words as well as the question mark (salescalls.questions)
-- The stored conversation metrics are recomputed after this block (store._AFTER_MIGRATION).
UPDATE call_results SET rep_questions = NULL;

-- migration 10: the outcomes each script version counts as a success (the script's `success:`)
-- A version stored before this has no row: the queries count sale and meeting for it, as before.
CREATE TABLE script_versions (
    script_id      VARCHAR NOT NULL,
    script_version INTEGER NOT NULL,
    success        VARCHAR[] NOT NULL,   -- outcomes that make a call a success wherever it ended
    PRIMARY KEY (script_id, script_version)
);
