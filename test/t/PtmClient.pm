# A real client for the fault tests (test/t/112_frozen_holder.pl): one psql
# process (IPC::Run) holding one session, to which statements are sent
# without waiting for them, so that a test can leave a session idle in a
# transaction, stop its process with SIGSTOP, time a call that might block,
# and see what the session says when it is resumed.
#
#   my $c = PtmClient->new($node, $db, 'agent-a');   # application_name agent-a
#   my ($out, $err, $secs) = $c->query($sql [, $timeout]);  # send and wait
#   my $n = $c->send($sql); ... $c->wait($n [, $timeout])    # the same, split
#   $c->done($n)            # has statement $n completed (no wait)?
#   $c->backend_pid, $c->psql_pid, $c->stop, $c->cont (SIGSTOP/SIGCONT psql)
#   my ($exit_ok, $err) = $c->finish($sql)   # last statements, \q, wait for exit
#
# query() and wait() return undef for $out when the statement did not complete
# within the timeout (the session is then still busy), so a test that expected
# a bounded wait fails instead of hanging.
package PtmClient;
use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(time usleep);

sub new
{
	my ($class, $node, $db, $name) = @_;
	my $self = bless { in => '', out => '', err => '', n => 0, name => $name }, $class;
	$self->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=0', '-d',
		  $node->connstr($db) . " application_name='$name'" ],
		'<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err});
	my ($out) = $self->query('SELECT pg_backend_pid()', 60);
	die "$name: psql did not connect: $self->{err}" unless defined $out && $out =~ /^(\d+)$/;
	$self->{backend_pid} = $1;
	($out) = $self->query('\! echo psql_pid=$PPID', 60);
	die "$name: no psql pid" unless defined $out && $out =~ /psql_pid=(\d+)/;
	$self->{psql_pid} = $1;
	return $self;
}

sub backend_pid { return $_[0]{backend_pid}; }
sub psql_pid    { return $_[0]{psql_pid}; }

sub send
{
	my ($self, $sql) = @_;
	my $n = ++$self->{n};
	# the ";" sends a statement written without one (an empty one is harmless)
	$self->{in} .= "$sql\n;\n\\echo __ptm_done_$n\n\\warn __ptm_done_$n\n";
	$self->{sent_at}{$n} = time;
	eval { $self->{h}->pump_nb };
	return $n;
}

sub _pump
{
	my ($self) = @_;
	return 0 unless $self->{h}->pumpable;
	eval { $self->{h}->pump_nb };
	return 1;
}

sub done
{
	my ($self, $n) = @_;
	$self->_pump;
	return $self->{out} =~ /__ptm_done_$n\n/ && $self->{err} =~ /__ptm_done_$n\n/;
}

# Wait for statement $n; returns (stdout, stderr, seconds since it was sent),
# stdout undef if it did not complete within $timeout seconds.
sub wait
{
	my ($self, $n, $timeout) = @_;
	$timeout //= 60;
	my $deadline = time + $timeout;
	until ($self->done($n))
	{
		return (undef, $self->{err}, time - $self->{sent_at}{$n})
		  if time > $deadline || !$self->{h}->pumpable;
		usleep(5_000);
	}
	my $secs = time - $self->{sent_at}{$n};
	my ($out, $rest) = $self->{out} =~ /\A(.*?)__ptm_done_$n\n(.*)\z/s;
	my ($err, $erest) = $self->{err} =~ /\A(.*?)__ptm_done_$n\n(.*)\z/s;
	$self->{out} = $rest;
	$self->{err} = $erest;
	chomp $out;
	return ($out, $err, $secs);
}

sub query
{
	my ($self, $sql, $timeout) = @_;
	return $self->wait($self->send($sql), $timeout);
}

sub stop { kill 'STOP', $_[0]{psql_pid}; }
sub cont { kill 'CONT', $_[0]{psql_pid}; }

# Send the last statements and \q, wait for psql to exit; returns whether it
# exited with status 0 and everything it wrote to stderr.
sub finish
{
	my ($self, $sql, $timeout) = @_;
	$self->{in} .= "$sql\n" if defined $sql;
	$self->{in} .= "\\q\n";
	my $deadline = time + ($timeout // 60);
	while ($self->{h}->pumpable && time < $deadline)
	{
		eval { $self->{h}->pump_nb };
		usleep(10_000);
	}
	my $ok = eval { $self->{h}->finish } ? 1 : 0;
	return ($ok, $self->{err});
}

1;
