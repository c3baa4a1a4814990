mod dns;
mod link;
mod nft;
