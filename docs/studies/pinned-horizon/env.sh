BIN=/usr/lib/postgresql/15/bin
export PGHOST=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/sock PGPORT=55432 PGUSER=postgres PGDATABASE=postgres
P() { su postgres -c "PGHOST=$PGHOST PGPORT=$PGPORT $BIN/psql -X -q -v ON_ERROR_STOP=1 $*"; }
