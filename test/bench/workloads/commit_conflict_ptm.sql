\set k random(0, :rows - 1)
SELECT result, version, state FROM ptm.try_commit('cf-' || :k, 1, '{"a": 1}');
