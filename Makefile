# ptm_lease: epoch-fenced leases, optimistic commits and projections for PostgreSQL.
#
#   make                 build the module (-Wall -Wextra; WERROR=1 adds -Werror)
#   make install         install into the server that PG_CONFIG names
#   make test            the whole test suite against a temporary cluster (test/run)
#   make demo            a local server under .pgdata/ with the extension loaded (test/demo)
#
# The control file's default_version is the one version source: EXTVERSION, the install
# script's name and the library's own version string are all derived from it.

EXTENSION  = ptm_lease
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = ptm_lease
OBJS       = $(patsubst %.c,%.o,$(wildcard src/*.c))

# The install script is assembled from one file per SQL concern (sql/install/NN_*.sql),
# in file-name order, so each object has a file a reader can find.
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))
DATA_built    = $(EXTENSION)--$(EXTVERSION).sql
# Old versions kept whole (sql/upgrade/ptm_lease--0.1.0.sql) and update scripts
# (ptm_lease--OLD--NEW.sql), installed beside the current script.
DATA          = $(wildcard sql/upgrade/$(EXTENSION)--*.sql)

# pg_regress: behaviour and error messages (sql/*.sql against expected/*.out).
REGRESS       = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS  = --inputdir=. --load-extension=ptm_lease
# Isolation specs: test/isolation/specs/*.spec against test/isolation/expected/*.out.
ISOLATION      = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=ptm_lease

EXTRA_CLEAN = $(EXTENSION).control.out results regression.diffs regression.out \
              output_iso tmp_check

PG_CPPFLAGS = -I$(srcdir)/src -DPTM_LEASE_VERSION='"$(EXTVERSION)"'
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
              -Wno-sign-compare $(if $(WERROR),-Werror)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_PARTS)
	cat $^ > $@

# The control file carries the version the library reports, so a bump rebuilds it.
$(OBJS): $(wildcard src/*.h) $(EXTENSION).control

.PHONY: test demo demo-stop
test:
	PG_CONFIG=$(PG_CONFIG) test/run

demo:
	PG_CONFIG=$(PG_CONFIG) test/demo

demo-stop:
	PG_CONFIG=$(PG_CONFIG) test/demo stop
