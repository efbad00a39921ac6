#!/bin/sh
# Makes the certificates the TLS tests use, in directory $1, with the
# openssl command line tool. EC P-256 keys (fast to make). Files:
#
#   ca.pem ca.key            the test CA (the clients trust it)
#   ca2.pem ca2.key          another CA nobody trusts
#   valid.pem/.key           localhost, 127.0.0.1, ::1; by ca
#   other.pem/.key           other.test (a second name for SNI); by ca
#   expired.pem/.key         localhost; valid in 2020 only; by ca
#   notyet.pem/.key          localhost; valid from 2090; by ca
#   wronghost.pem/.key       wrong.example only; by ca
#   unknownca.pem/.key       localhost; by ca2
#   selfsigned.pem/.key      localhost; signs itself
#   client.pem/.key          a client certificate; by ca
#   chain.pem                valid.pem followed by ca.pem
set -eu
dir=$1
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name cn
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  mkdir -p "$1.db"
  : >"$1.db/index.txt"
  cat >"$1.cnf" <<EOF
[ ca ]
default_ca = this
[ this ]
dir = $dir/$1.db
database = \$dir/index.txt
new_certs_dir = \$dir
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
rand_serial = yes
x509_extensions = leaf
[ any ]
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
EOF
}

leaf() { # name ca cn san dates...
  name=$1 by=$2 cn=$3 san=$4
  shift 4
  key "$name.key"
  openssl req -new -key "$name.key" -out "$name.csr" -subj "/CN=$cn" \
    -addext "subjectAltName=$san" 2>/dev/null
  openssl ca -batch -notext -config "$by.cnf" -cert "$by.pem" \
    -keyfile "$by.key" -in "$name.csr" -out "$name.pem" "$@" 2>/dev/null
  rm -f "$name.csr"
}

ca ca "weft test CA"
ca ca2 "weft unknown CA"
here="DNS:localhost,IP:127.0.0.1,IP:::1"
leaf valid ca localhost "$here" -days 30
leaf other ca other.test "DNS:other.test,DNS:*.other.test" -days 30
leaf expired ca localhost "$here" -startdate 20200101000000Z -enddate 20200201000000Z
leaf notyet ca localhost "$here" -startdate 20900101000000Z -enddate 20910101000000Z
leaf wronghost ca wrong.example "DNS:wrong.example" -days 30
leaf unknownca ca2 localhost "$here" -days 30
leaf client ca "weft client" "DNS:client.test" -days 30
key selfsigned.key
openssl req -x509 -new -key selfsigned.key -out selfsigned.pem -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=$here" 2>/dev/null
cat valid.pem ca.pem >chain.pem
